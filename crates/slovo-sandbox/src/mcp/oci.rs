//! MCP servers that come as OCI images (`execution.image`, pinned by digest): each started in
//! a fresh container of the Docker backend, with its whole isolation (no network unless
//! granted, read-only root, no capabilities, `no-new-privileges`, its seccomp profile, the
//! grant's limits, `/data`, a non-root user), and spoken to over the container's attached
//! stdio by the same MCP client as a server in the process sandbox ([`ContainerStdio`]).
//!
//! - **Install**: the image is found on this host by its digest (never pulled), started once
//!   with no network and no state, and answers `initialize` and `tools/list`; the facts pin
//!   its image id and its tool list.
//! - **A call**: the pinned image must still be here; a fresh container runs `initialize`,
//!   the pin's `tools/list`, `tools/call`, shutdown, and is removed.
//! - **Warm** ([`InContainer`], for the pool): the same checks and the same container, started
//!   by the same code (`DockerBackend::start_with`) before the call; `initialize` and the pin's
//!   `tools/list` are done then, and the container waits for its one `tools/call`, after which
//!   it is removed. Never used for a second call.

use std::sync::Arc;

use async_trait::async_trait;
use bollard::container::LogOutput;
use futures_util::StreamExt;
use slovo_core::install::{InstallFacts, McpFacts};
use tokio::time::Instant;

use super::client::Session;
use super::pool::{Launcher, Ready, Recipe, Teardown, WarmCall, WarmServer, answer, get_ready};
use super::stdio::{AfterClose, Output, ServerStdio};
use super::{ListTools, OneCall, image_of, install_spec, pin};
use crate::docker::{
    ContainerConversed, ContainerDialogue, ContainerIo, DockerBackend, OutputStream, StartedContainer,
    Workload,
};
use crate::process::{Conversed, Program};
use crate::{InstallRequest, Outcome, SandboxSpec};

/// A started container's attached streams.
pub(crate) struct ContainerStdio {
    input: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    output: OutputStream,
    /// The output stream ended (the container's streams closed: it exited), or the server
    /// was stopped.
    ended: bool,
}

/// A conversation with the server in a started container, under the call's deadline and caps.
fn session(io: ContainerIo) -> Session<ContainerStdio> {
    let stdio = ContainerStdio {
        input: Some(io.input),
        output: io.output,
        ended: false,
    };
    Session::over(stdio, io.deadline, io.stdout_limit, io.stderr_limit)
}

impl ServerStdio for ContainerStdio {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let Some(input) = self.input.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "stdin is closed",
            ));
        };
        input.write_all(bytes).await?;
        input.flush().await
    }

    async fn close_stdin(&mut self) {
        use tokio::io::AsyncWriteExt;
        // Half-closes the attached connection: the daemon closes the program's stdin
        // (`StdinOnce`).
        if let Some(mut input) = self.input.take() {
            let _ = input.shutdown().await;
        }
    }

    async fn read(&mut self) -> Output {
        loop {
            if self.ended {
                return Output::StdoutClosed;
            }
            match self.output.next().await {
                None | Some(Err(_)) => self.ended = true,
                Some(Ok(LogOutput::StdOut { message })) => return Output::Stdout(message.to_vec()),
                Some(Ok(LogOutput::StdErr { message })) => return Output::Stderr(message.to_vec()),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn after_close(&mut self) -> AfterClose {
        loop {
            if self.ended {
                return AfterClose::Exited;
            }
            match self.output.next().await {
                None | Some(Err(_)) => self.ended = true,
                Some(Ok(LogOutput::StdErr { message })) => return AfterClose::Stderr(message.to_vec()),
                // Output after the answer is not the call's.
                Some(Ok(_)) => {}
            }
        }
    }

    fn kill(&mut self) {
        // Nothing more is read or written; the container is removed forcibly as soon as the
        // conversation returns, which is at once (every caller of `kill` returns its error).
        self.ended = true;
        self.input = None;
    }
}

/// What the Docker backend keeps of a conversation: the same capture as in the process
/// sandbox, and its verdict.
fn in_container(conversed: Conversed) -> ContainerConversed {
    ContainerConversed {
        watched: crate::docker::Watched {
            captured: conversed.watched,
            ..Default::default()
        },
        verdict: conversed.verdict,
    }
}

#[async_trait]
impl ContainerDialogue for OneCall {
    async fn converse(&self, io: ContainerIo) -> ContainerConversed {
        in_container(self.over(session(io)).await)
    }
}

#[async_trait]
impl ContainerDialogue for ListTools {
    async fn converse(&self, io: ContainerIo) -> ContainerConversed {
        in_container(self.over(session(io)).await)
    }
}

/// The container's workload: the pinned image, the manifest's command as its `CMD` (none:
/// the image's own), the server's environment; never the call's capability or id.
fn workload<'a>(image_id: &'a str, program: &'a Program, env: &'a [String]) -> Workload<'a> {
    Workload {
        image_id,
        entrypoint: None,
        cmd: (!program.command.is_empty()).then_some(program.command.as_slice()),
        env,
        call_env: false,
    }
}

fn env_of(program: &Program) -> Vec<String> {
    program.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Finds `image` here by its digest, starts it once (no network, no state, the install
/// limits) and reads its `initialize` answer and tools.
pub(super) async fn install(
    docker: &DockerBackend,
    request: &InstallRequest,
    image: &str,
    program: &Program,
) -> Result<InstallFacts, String> {
    let found = docker.pinned_image(image).await.map_err(|e| e.to_string())?;
    let spec = install_spec(request);
    let env = env_of(program);
    let dialogue = ListTools::default();
    let outcome = docker
        .run_with(&spec, &workload(&found.image_id, program, &env), &dialogue)
        .await
        .map_err(|e| e.to_string())?;
    let (server, tools) = dialogue
        .found(outcome)
        .await
        .map_err(|e| format!("the server did not list its tools when started in its container: {e}"))?;
    let config = docker.config();
    Ok(InstallFacts::Mcp(McpFacts::Image {
        image: image.to_string(),
        image_id: found.image_id,
        repo_digests: found.repo_digests,
        command: program.command.clone(),
        user: format!("{}:{}", config.uid, config.gid),
        listed: pin::listed(&server, tools),
    }))
}

/// One call in a fresh container of the image pinned at install.
pub(super) async fn run(
    docker: &DockerBackend,
    spec: &SandboxSpec,
    image: &str,
    program: &Program,
    call: &OneCall,
) -> Outcome {
    let outcome = async {
        let image_id = DockerBackend::pinned(spec)?;
        docker.check_present(image, &image_id).await?;
        let env = env_of(program);
        docker
            .run_with(spec, &workload(&image_id, program, &env), call)
            .await
    }
    .await;
    outcome.unwrap_or_else(|e| {
        tracing::warn!(error = %e, tool = %spec.tool, execution = %spec.execution_id, "MCP call in a container failed");
        Outcome::failed(e.to_string())
    })
}

/// Starts warm servers in containers of `0`, for the pool.
pub(crate) struct InContainer(pub Arc<DockerBackend>);

/// A server started in its container, initialised, waiting for its call.
struct WarmContainer {
    started: StartedContainer,
    session: Session<ContainerStdio>,
}

#[async_trait]
impl Launcher for InContainer {
    /// As a cold call: the image pinned at install, still here, started by the same code with
    /// the same flags; then `initialize` and the pin's `tools/list`.
    async fn warm_up(&self, recipe: &Recipe, spec: &SandboxSpec) -> Result<Ready, String> {
        let docker = &self.0;
        let image = image_of(&spec.execution)
            .ok_or_else(|| format!("the tool {} does not run in an image", spec.tool))?;
        let image_id = DockerBackend::pinned(spec).map_err(|e| e.to_string())?;
        docker
            .check_present(image, &image_id)
            .await
            .map_err(|e| e.to_string())?;
        let env = env_of(recipe.program());
        let mut started = docker
            .start_with(spec, &workload(&image_id, recipe.program(), &env))
            .await
            .map_err(|e| e.to_string())?;
        let io = match started.take_io() {
            Ok(io) => io,
            Err(e) => {
                started.destroy().await;
                return Err(e.to_string());
            }
        };
        let mut session = session(io);
        match get_ready(&mut session, recipe.pinned()).await {
            Ok(pin_refusal) => Ok(Ready {
                server: Box::new(WarmContainer { started, session }),
                pin_refusal,
            }),
            Err(e) => {
                drop(session);
                started.destroy().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl WarmServer for WarmContainer {
    fn started_at(&self) -> Instant {
        self.started.started_at
    }

    async fn serve(self: Box<Self>, call: WarmCall<'_>) -> (Outcome, Teardown) {
        let WarmContainer {
            mut started,
            mut session,
        } = *self;
        let conversed = answer(&mut session, call).await;
        let outcome = started.outcome_at_answer(in_container(conversed));
        let teardown: Teardown = Box::pin(async move {
            session.shutdown().await;
            drop(session);
            started.destroy().await;
        });
        (outcome, teardown)
    }

    async fn destroy(self: Box<Self>) {
        let WarmContainer { started, session } = *self;
        drop(session);
        started.destroy().await;
    }
}
