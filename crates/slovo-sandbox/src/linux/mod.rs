//! The Linux pieces both native backends build on: the process backend (a sandbox made from
//! kernel primitives) and the Docker backend (a container the daemon makes) enforce the same
//! system-call policy, keep a tool's state in the same kind of volume and read the same
//! mount table. What only one backend needs stays in that backend's module.
//!
//! - [`syscalls`]: the allow list of system calls, compiled to BPF by the process backend and
//!   written as a Docker seccomp profile by the Docker backend;
//! - [`volume`]: a tool's `/data`, an ext4 image with its quota, loop-mounted once and shared
//!   by every process on the data directory;
//! - [`mountinfo`]: `/proc/self/mountinfo`, for the cgroup hierarchies and the volumes.

pub mod mountinfo;
pub mod syscalls;
pub mod volume;
