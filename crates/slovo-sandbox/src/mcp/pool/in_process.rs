//! Warm servers in the process sandbox: started by [`ProcessBackend::start_program`] from the
//! recipe's spec and program, as a cold call's server is, and spoken to over their pipes.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Launcher, Ready, Recipe, Teardown, WarmCall, WarmServer, answer, get_ready};
use crate::mcp::client::Session;
use crate::mcp::stdio::PipeStdio;
use crate::process::ProcessBackend;
use crate::process::run::{Launch, Started};
use crate::{Outcome, SandboxSpec};

/// Starts warm servers in `0`'s sandboxes.
pub(crate) struct InProcess(pub Arc<ProcessBackend>);

/// A server started in the process sandbox, initialised, waiting for its call.
struct WarmProcess {
    process: Arc<ProcessBackend>,
    started: Box<Started>,
    session: Session<PipeStdio>,
}

#[async_trait]
impl Launcher for InProcess {
    async fn warm_up(&self, recipe: &Recipe, spec: &SandboxSpec) -> Result<Ready, String> {
        let mut started = match self.0.start_program(spec, recipe.program()).await {
            Ok(Launch::Started(s)) => s,
            Ok(Launch::Failed(outcome)) => {
                return Err(outcome
                    .error
                    .unwrap_or_else(|| "the sandbox did not start".into()));
            }
            Err(e) => return Err(e.to_string()),
        };
        let io = started.take_io().map_err(|e| e.to_string())?;
        let mut session = Session::new(io);
        // A server that fails here is killed with its sandbox when `started` is dropped.
        let pin_refusal = get_ready(&mut session, recipe.pinned()).await?;
        Ok(Ready {
            server: Box::new(WarmProcess {
                process: self.0.clone(),
                started,
                session,
            }),
            pin_refusal,
        })
    }
}

#[async_trait]
impl WarmServer for WarmProcess {
    fn started_at(&self) -> Instant {
        self.started.started_at
    }

    async fn serve(self: Box<Self>, call: WarmCall<'_>) -> (Outcome, Teardown) {
        let WarmProcess {
            process,
            mut started,
            mut session,
        } = *self;
        let conversed = answer(&mut session, call).await;
        let outcome = process.outcome_before_destroy(&mut started, conversed);
        let teardown: Teardown = Box::pin(async move {
            session.shutdown().await;
            drop(session);
            let _ = tokio::task::spawn_blocking(move || started.destroy()).await;
        });
        (outcome, teardown)
    }

    async fn destroy(self: Box<Self>) {
        let WarmProcess { started, session, .. } = *self;
        drop(session);
        let _ = tokio::task::spawn_blocking(move || started.destroy()).await;
    }
}
