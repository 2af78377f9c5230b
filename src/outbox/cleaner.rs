//! The cleanup thread's loop: every `cleanup_interval`, removes dispatched
//! rows older than `retention`, in batches of `cleanup_batch_size`.

use std::sync::Arc;
use std::time::SystemTime;

use crate::outbox::config::OutboxConfig;
use crate::outbox::event::OutboxEvent;
use crate::outbox::reporter::Reporter;
use crate::outbox::store::OutboxStore;
use crate::outbox::wake::Wake;

pub(crate) struct Cleaner<S> {
    store: Arc<S>,
    wake: Arc<Wake>,
    reporter: Reporter,
    config: OutboxConfig,
}

impl<S: OutboxStore> Cleaner<S> {
    pub(crate) fn new(
        store: Arc<S>,
        wake: Arc<Wake>,
        reporter: Reporter,
        config: OutboxConfig,
    ) -> Self {
        Cleaner {
            store,
            wake,
            reporter,
            config,
        }
    }

    pub(crate) fn run(self) {
        while !self.wake.sleep(self.config.cleanup_interval()) {
            self.clean();
        }
    }

    fn clean(&self) {
        let Some(older_than) = SystemTime::now().checked_sub(self.config.retention()) else {
            return;
        };
        let batch = self.config.cleanup_batch_size();
        let mut removed = 0;
        while !self.wake.is_closed() {
            match self.store.remove_dispatched(older_than, batch) {
                Ok(n) => {
                    removed += n;
                    if n < u64::try_from(batch).unwrap_or(u64::MAX) {
                        break;
                    }
                }
                Err(error) => {
                    log::warn!("outbox: cleanup failed: {error}");
                    self.reporter.report(OutboxEvent::StoreFailed { error });
                    break;
                }
            }
        }
        if removed > 0 {
            log::debug!("outbox: cleanup removed {removed} dispatched rows");
            self.reporter.report(OutboxEvent::Cleaned { removed });
        }
    }
}
