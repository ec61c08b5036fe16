//! Secrets encrypted at rest with XChaCha20-Poly1305.
//!
//! The 32-byte key comes from the configuration's `secret_key` (`SLOVO_SECRET_KEY`, 64 hex characters) or from the file
//! `secret.key` in the data directory, created with mode 0600 on first use. The database only
//! ever holds nonces and ciphertexts; the associated data binds each ciphertext to its tool and
//! name, so a row copied onto another tool or name does not decrypt.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use slovo_core::audit::AuditRecord;
use slovo_core::audit::record::SecretName;
use slovo_core::secrets::Secrets;
use slovo_core::time::now_ms;
use slovo_store::SecretRow;
use zeroize::Zeroizing;

use crate::audit_record::AppendRecord;
use crate::{Actor, Result, Runtime, RuntimeError};

const KEY_FILE: &str = "secret.key";
/// The secrets namespace of the LLM analysis provider (`slovo secret set _llm api_key`).
pub const LLM_SECRETS: &str = "_llm";

fn aad(tool: &str, name: &str) -> Vec<u8> {
    format!("slovo-secret:v1:{tool}:{name}").into_bytes()
}

fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Loads the key, creating the key file if neither it nor the variable exists.
fn load_key(data_dir: &Path, configured: Option<&str>) -> Result<Zeroizing<[u8; 32]>> {
    let invalid = |why: String| RuntimeError::Conflict {
        tool: "-".into(),
        reason: why,
    };
    let mut key = Zeroizing::new([0u8; 32]);
    if let Some(hex_key) = configured {
        let bytes = Zeroizing::new(
            hex::decode(hex_key.trim())
                .map_err(|_| invalid("the configured secret_key is not hex".into()))?,
        );
        if bytes.len() != 32 {
            return Err(invalid(
                "the configured secret_key must be 32 bytes (64 hex characters)".into(),
            ));
        }
        key.copy_from_slice(&bytes);
        return Ok(key);
    }
    key_file(&data_dir.join(KEY_FILE), true)?
        .ok_or_else(|| invalid(format!("no key file in {}", data_dir.display())))
}

/// Reads a 32-byte key file, which must be readable by its owner only; when it does not exist,
/// creates it (mode 0600, fresh random bytes) if `create` is set, else returns `None`.
pub(crate) fn key_file(path: &Path, create: bool) -> Result<Option<Zeroizing<[u8; 32]>>> {
    let invalid = |why: String| RuntimeError::Conflict {
        tool: "-".into(),
        reason: why,
    };
    let mut key = Zeroizing::new([0u8; 32]);
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let mode = std::fs::metadata(path)
                .map_err(|e| RuntimeError::io("stat", path, e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(invalid(format!(
                    "{} must be readable by its owner only (chmod 600)",
                    path.display()
                )));
            }
            if bytes.len() != 32 {
                return Err(invalid(format!("{} must hold exactly 32 bytes", path.display())));
            }
            key.copy_from_slice(&bytes);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            getrandom::fill(key.as_mut()).map_err(|e| {
                RuntimeError::io(
                    "read",
                    "the system random source",
                    std::io::Error::other(e.to_string()),
                )
            })?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io("create", dir, e))?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| RuntimeError::io("create", path, e))?;
            f.write_all(key.as_ref())
                .map_err(|e| RuntimeError::io("write", path, e))?;
            f.sync_all().map_err(|e| RuntimeError::io("sync", path, e))?;
        }
        Err(e) => return Err(RuntimeError::io("read", path, e)),
    }
    Ok(Some(key))
}

/// Saves sealed secrets ([`Runtime::seal_secret`]) in `tx`, each with its `secret.set` event
/// (names only).
pub(crate) async fn save_sealed(tx: &mut slovo_store::Tx, sealed: &[SecretRow], actor: &Actor) -> Result<()> {
    for row in sealed {
        tx.save_secret(row).await?;
        tx.append_record(
            Some(&row.tool),
            &actor.0,
            &AuditRecord::SecretSet(SecretName {
                name: row.name.clone(),
            }),
        )
        .await?;
    }
    Ok(())
}

impl Runtime {
    fn cipher(&self) -> Result<XChaCha20Poly1305> {
        let key = load_key(
            &self.data_dir,
            self.settings.secret_key.as_deref().map(String::as_str),
        )?;
        XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| RuntimeError::Conflict {
            tool: "-".into(),
            reason: "bad secret key length".into(),
        })
    }

    /// Stores (or replaces) a tool's secret, encrypted. The value is never logged, audited or
    /// returned.
    pub async fn set_secret(
        &self,
        tool: &str,
        name: &str,
        value: Zeroizing<String>,
        actor: &Actor,
    ) -> Result<()> {
        let sealed = self.seal_secret(tool, name, &value)?;
        // `_llm` holds the analysis provider's key; no tool can take that name.
        if tool != LLM_SECRETS && self.store.tool(tool).await?.is_none() {
            return Err(RuntimeError::tool_not_found(tool));
        }
        let mut tx = self.store.begin().await?;
        save_sealed(&mut tx, std::slice::from_ref(&sealed), actor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `value` encrypted as `tool`'s secret `name`, ready to be saved ([`save_sealed`]); the
    /// name and value are checked first.
    pub(crate) fn seal_secret(&self, tool: &str, name: &str, value: &str) -> Result<SecretRow> {
        let invalid = |problem: String| RuntimeError::InvalidArguments {
            tool: tool.to_string(),
            capability: "secret".into(),
            problems: vec![problem],
        };
        if !valid_secret_name(name) {
            return Err(invalid(format!(
                "{name:?} is not a secret name (1-64 of A-Z a-z 0-9 _ - .)"
            )));
        }
        if value.is_empty() {
            return Err(invalid(format!("the value of the secret {name:?} is empty")));
        }
        let cipher = self.cipher()?;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| {
            RuntimeError::io(
                "read",
                "the system random source",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad(tool, name),
                },
            )
            .map_err(|_| RuntimeError::Conflict {
                tool: tool.into(),
                reason: "encryption failed".into(),
            })?;
        let now = now_ms();
        Ok(SecretRow {
            tool: tool.to_string(),
            name: name.to_string(),
            nonce: nonce.to_vec(),
            ciphertext,
            created_at: now,
            updated_at: now,
        })
    }

    /// Deletes a tool's secret.
    pub async fn delete_secret(&self, tool: &str, name: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.store.begin().await?;
        if !tx.delete_secret(tool, name).await? {
            tx.rollback().await?;
            return Err(RuntimeError::NotFound {
                what: "secret",
                name: format!("{tool}/{name}"),
            });
        }
        tx.append_record(
            Some(tool),
            &actor.0,
            &AuditRecord::SecretDeleted(SecretName {
                name: name.to_string(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The names of a tool's secrets (never their values).
    pub async fn secret_names(&self, tool: &str) -> Result<Vec<String>> {
        Ok(self
            .store
            .secrets(tool)
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect())
    }

    /// The LLM provider's key, if one was stored (`slovo secret set _llm api_key`).
    pub async fn llm_api_key(&self) -> Result<Option<String>> {
        Ok(self
            .secrets_for(LLM_SECRETS)
            .await?
            .get("api_key")
            .map(str::to_string))
    }

    /// A tool's secrets, decrypted, for one call.
    pub(crate) async fn secrets_for(&self, tool: &str) -> Result<Secrets> {
        let rows = self.store.secrets(tool).await?;
        if rows.is_empty() {
            return Ok(Secrets::default());
        }
        let cipher = self.cipher()?;
        let mut values = BTreeMap::new();
        for row in rows {
            let Ok(nonce) = <[u8; 24]>::try_from(row.nonce.as_slice()) else {
                return Err(RuntimeError::Conflict {
                    tool: tool.into(),
                    reason: format!("secret {} is corrupt", row.name),
                });
            };
            let plain = cipher
                .decrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: &row.ciphertext,
                        aad: &aad(tool, &row.name),
                    },
                )
                .map_err(|_| RuntimeError::Conflict {
                    tool: tool.into(),
                    reason: format!(
                        "secret {} does not decrypt (wrong key, or the row was tampered with)",
                        row.name
                    ),
                })?;
            let text = String::from_utf8(plain).map_err(|_| RuntimeError::Conflict {
                tool: tool.into(),
                reason: format!("secret {} is not text", row.name),
            })?;
            values.insert(row.name, text);
        }
        Ok(Secrets::new(values))
    }
}
