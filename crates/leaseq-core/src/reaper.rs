//! Background work of each broker process: moving data of an earlier version onto
//! today's layout (once, at start-up), then the retention sweep.
//!
//! Safe in any number of processes at once: queues are claimed in Redis before they
//! are swept, and every step is one script.

use std::time::Duration;

use serde::Deserialize;

use crate::broker::{Broker, SweepOutcome};

/// `[retention]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Milliseconds between sweeps of one process.
    pub sweep_interval_ms: u64,
    /// Most queues one sweep takes on.
    pub sweep_batch: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            sweep_interval_ms: 1000,
            sweep_batch: 100,
        }
    }
}

pub struct Reaper {
    broker: Broker,
    settings: RetentionSettings,
}

impl Reaper {
    pub fn new(broker: Broker, settings: RetentionSettings) -> Self {
        Self { broker, settings }
    }

    /// One sweep. Tests call this instead of waiting for the loop.
    pub async fn tick(&self) -> Result<SweepOutcome, crate::broker::BrokerError> {
        self.broker.sweep(self.settings.sweep_batch).await
    }

    /// Migrates, then sweeps until the process ends; a failed step (Redis down) is
    /// retried next tick.
    pub async fn run(self) {
        let interval = Duration::from_millis(self.settings.sweep_interval_ms.max(10));
        loop {
            match self.broker.migrate_storage().await {
                Ok(0) => break,
                Ok(queues) => {
                    tracing::info!(queues, "moved every queue onto the current storage layout");
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "storage migration failed; retrying"),
            }
            tokio::time::sleep(interval).await;
        }
        loop {
            match self.tick().await {
                Ok(outcome) if outcome.expired > 0 => {
                    tracing::info!(
                        queues = outcome.queues,
                        expired = outcome.expired,
                        "retention sweep"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying"),
            }
            tokio::time::sleep(interval).await;
        }
    }
}
