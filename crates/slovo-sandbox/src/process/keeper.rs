//! A thread that makes sandbox parts ahead of time and disposes of used ones, so that neither
//! happens on a call's path. Each part still serves exactly one call: [`Keeper::take`] hands
//! out a part once and never takes it back; [`Keeper::dispose`] ends it.
//!
//! Used for network namespaces ([`super::namespaces::NetnsKeeper`]) and call cgroups
//! ([`super::cgroups::CgroupKeeper`]).

use std::sync::{Arc, Mutex, mpsc};

enum Job<T> {
    Refill,
    Dispose(T),
}

/// Keeps `target` parts of type `T` ready.
pub(crate) struct Keeper<T: Send + 'static> {
    ready: Arc<Mutex<Vec<T>>>,
    jobs: Mutex<mpsc::Sender<Job<T>>>,
}

impl<T: Send + 'static> std::fmt::Debug for Keeper<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ready = self.ready.lock().map(|r| r.len()).unwrap_or(0);
        f.debug_struct("Keeper").field("ready", &ready).finish()
    }
}

impl<T: Send + 'static> Keeper<T> {
    /// Starts the thread `name`, which calls `make` until `target` parts are ready (again
    /// after each [`Keeper::take`]) and `dispose` on each part handed to [`Keeper::dispose`].
    /// The thread ends when the keeper is dropped, after the disposals asked for; parts still
    /// ready then are dropped.
    pub(crate) fn start<E: std::fmt::Display>(
        name: &str,
        target: usize,
        mut make: impl FnMut() -> Result<T, E> + Send + 'static,
        mut dispose: impl FnMut(T) + Send + 'static,
    ) -> std::io::Result<Keeper<T>> {
        let ready = Arc::new(Mutex::new(Vec::with_capacity(target)));
        let (jobs, queue) = mpsc::channel::<Job<T>>();
        let shelf = ready.clone();
        let what = name.to_string();
        std::thread::Builder::new().name(name.into()).spawn(move || {
            while let Ok(job) = queue.recv() {
                match job {
                    Job::Dispose(part) => dispose(part),
                    Job::Refill => {
                        while shelf.lock().map(|r| r.len() < target).unwrap_or(false) {
                            match make() {
                                Ok(part) => {
                                    if let Ok(mut r) = shelf.lock() {
                                        r.push(part);
                                    }
                                }
                                Err(e) => {
                                    // Calls make their own part meanwhile; try again on the
                                    // next take.
                                    tracing::warn!(keeper = %what, error = %e, "failed to make a part ahead of time");
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        })?;
        let keeper = Keeper {
            ready,
            jobs: Mutex::new(jobs),
        };
        keeper.send(Job::Refill);
        Ok(keeper)
    }

    fn send(&self, job: Job<T>) {
        if let Ok(jobs) = self.jobs.lock() {
            // A send fails only if the thread is gone; the part is then dropped here.
            let _ = jobs.send(job);
        }
    }

    /// A ready part, if there is one (the caller makes its own otherwise), and a refill.
    pub(crate) fn take(&self) -> Option<T> {
        let part = self.ready.lock().ok().and_then(|mut r| r.pop());
        self.send(Job::Refill);
        part
    }

    /// Ends a used part on the keeper's thread.
    pub(crate) fn dispose(&self, part: T) {
        self.send(Job::Dispose(part));
    }
}
