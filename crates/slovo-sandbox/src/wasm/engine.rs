//! The wasmtime engine: its configuration, its fingerprint and its epoch ticker.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::{WasmConfig, WasmError};

/// Builds the engine all calls share.
///
/// - Epoch interruption on: the only way a loop without host calls can be stopped.
/// - The pooling allocator: memories, tables and instances come from slots reserved once, so
///   instantiating costs a few page-table updates instead of `mmap` calls, and with
///   copy-on-write memory images the data segments are not copied.
/// - Only core modules with one memory; no threads or shared memory (wasmtime is built
///   without them).
pub(crate) fn build(config: &WasmConfig) -> Result<Engine, WasmError> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(config.max_instances)
        .total_memories(config.max_instances)
        .total_tables(config.max_instances)
        .total_stacks(config.max_instances)
        .total_component_instances(0)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(config.max_table_elements)
        .max_memory_size(
            usize::try_from(config.max_memory_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
        );
    let mut c = Config::new();
    c.epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        .cranelift_opt_level(OptLevel::Speed)
        .shared_memory(false)
        .wasm_multi_memory(false)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).map_err(|e| WasmError::Engine(format!("{e:#}")))
}

/// A stable name for "artifacts this engine can load": the engine's own compatibility hash
/// (wasmtime version, target, compiler flags, tunables) plus the settings of ours that shape
/// compiled code. Artifacts are stored under it, so a new wasmtime or a new setting never
/// loads an old artifact.
pub(crate) fn fingerprint(engine: &Engine, config: &WasmConfig) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(format!(
        "slovo-wasm/1 max_wasm_stack={} max_memory_mb={}",
        config.max_wasm_stack, config.max_memory_mb
    ));
    hex::encode(h.0.finalize())[..16].to_string()
}

/// Advances the engine's epoch every tick while at least one call runs, and sleeps otherwise.
#[derive(Debug)]
pub(crate) struct Ticker {
    state: Arc<TickerState>,
}

#[derive(Debug, Default)]
struct TickerState {
    running: Mutex<usize>,
    wake: Condvar,
    stop: AtomicBool,
}

impl Ticker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> Result<Ticker, WasmError> {
        let state = Arc::new(TickerState::default());
        let shared = state.clone();
        std::thread::Builder::new()
            .name("slovo-wasm-epoch".into())
            .spawn(move || {
                loop {
                    {
                        let mut running = shared.running.lock().unwrap_or_else(PoisonError::into_inner);
                        while *running == 0 && !shared.stop.load(Ordering::Relaxed) {
                            running = shared.wake.wait(running).unwrap_or_else(PoisonError::into_inner);
                        }
                    }
                    if shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| WasmError::Engine(format!("failed to start the epoch ticker: {e}")))?;
        Ok(Ticker { state })
    }

    /// Marks a call as running until the guard drops.
    pub(crate) fn running(&self) -> Running<'_> {
        let mut running = self.state.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running += 1;
        if *running == 1 {
            self.state.wake.notify_one();
        }
        Running { ticker: self }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // Under the lock, so the ticker cannot miss the wake-up between its check and its wait.
        let _running = self.state.running.lock().unwrap_or_else(PoisonError::into_inner);
        self.state.stop.store(true, Ordering::Relaxed);
        self.state.wake.notify_one();
    }
}

/// A running call (see [`Ticker::running`]).
pub(crate) struct Running<'a> {
    ticker: &'a Ticker,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut running = self
            .ticker
            .state
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *running = running.saturating_sub(1);
    }
}
