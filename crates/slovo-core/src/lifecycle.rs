//! Tool lifecycle: `pending_approval → approved → active`, `active ⇄ disabled`,
//! anything `→ revoked`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a tool is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    /// Imported; nothing runs until a person approves it.
    PendingApproval,
    /// Approved with grants; the runtime is not prepared yet.
    Approved,
    /// Installed and callable.
    Active,
    /// Kept installed but not callable.
    Disabled,
    /// Withdrawn; its state kept or purged as the person chose.
    Revoked,
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tool is {from}, it cannot become {to}{hint}")]
pub struct TransitionError {
    /// The current status.
    pub from: ToolStatus,
    /// The status asked for.
    pub to: ToolStatus,
    hint: &'static str,
}

impl ToolStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [ToolStatus; 5] = [
        ToolStatus::PendingApproval,
        ToolStatus::Approved,
        ToolStatus::Active,
        ToolStatus::Disabled,
        ToolStatus::Revoked,
    ];

    /// The stored and displayed name (`pending_approval`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ToolStatus::PendingApproval => "pending_approval",
            ToolStatus::Approved => "approved",
            ToolStatus::Active => "active",
            ToolStatus::Disabled => "disabled",
            ToolStatus::Revoked => "revoked",
        }
    }

    /// Checks that `self → to` is a lifecycle transition.
    pub fn check_transition(self, to: ToolStatus) -> Result<(), TransitionError> {
        use ToolStatus::*;
        let allowed = matches!(
            (self, to),
            (PendingApproval, Approved)
                | (Approved, Active)
                | (Active, Disabled)
                | (Disabled, Active)
                | (PendingApproval | Approved | Active | Disabled, Revoked)
        );
        if allowed {
            return Ok(());
        }
        let hint = match (self, to) {
            (Revoked, _) => " (a revoked tool must be imported again)",
            (PendingApproval, Active) => " (approve it first)",
            (Disabled, Disabled) | (Active, Active) => "",
            (_, Approved) => " (only a pending tool is approved)",
            _ => "",
        };
        Err(TransitionError { from: self, to, hint })
    }
}

impl fmt::Display for ToolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tool status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for ToolStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ToolStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// A new tool, waiting for approval.
    New,
    /// A never-approved tool's pending version was replaced by a newer one.
    PendingReplaced,
    /// A newer version that asks for no more than was granted (and, where the tool could send
    /// something out, runs the same program) now serves calls.
    UpgradedInPlace,
    /// A newer version that asks for more, or that runs another program where the tool has a
    /// network grant or secrets, waits for approval; the approved one keeps serving.
    UpgradePending,
    /// A revoked tool was imported again and waits for approval.
    Reimported,
    /// This exact version was imported before; nothing changed.
    Unchanged,
}

#[cfg(test)]
mod tests {
    use super::ToolStatus::*;
    use super::*;

    #[test]
    fn only_documented_transitions_are_allowed() {
        let allowed = [
            (PendingApproval, Approved),
            (Approved, Active),
            (Active, Disabled),
            (Disabled, Active),
            (PendingApproval, Revoked),
            (Approved, Revoked),
            (Active, Revoked),
            (Disabled, Revoked),
        ];
        for from in ToolStatus::ALL {
            for to in ToolStatus::ALL {
                assert_eq!(
                    from.check_transition(to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in ToolStatus::ALL {
            assert_eq!(s.as_str().parse::<ToolStatus>(), Ok(s));
        }
        assert!("running".parse::<ToolStatus>().is_err());
    }
}
