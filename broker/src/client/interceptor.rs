//! Kafka's `ProducerInterceptor`: hooks that see (and may rewrite) every
//! record before it is partitioned and encoded, and every send's outcome
//! before the caller does.
//!
//! Interceptors run in the order they were added. As in Kafka
//! (`ProducerInterceptors`), a panicking interceptor is logged and skipped:
//! `on_send` then passes on the record it was given, and the producer keeps
//! working. Panics are caught with `catch_unwind`, so this relies on the
//! default `panic = "unwind"`.

use super::error::SendError;
use super::producer::RecordMetadata;
use bytes::Bytes;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A record as the caller hands it to the producer (Kafka's `ProducerRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// `None`: the partitioner chooses.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>, key: Option<Bytes>, value: Option<Bytes>) -> Self {
        ProducerRecord { topic: topic.into(), partition: None, key, value }
    }

    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// Kafka's `ProducerInterceptor`.
pub trait ProducerInterceptor: Send + Sync {
    /// Called before the record is partitioned and encoded; the returned
    /// record is what is sent (and what the next interceptor sees).
    fn on_send(&self, record: ProducerRecord) -> ProducerRecord;

    /// Called once per send with its outcome, before `send` returns and
    /// before a `send_with_callback` callback runs.
    fn on_acknowledgement(&self, result: Result<&RecordMetadata, &SendError>);
}

/// Runs `on_send` through every interceptor, in order, skipping any that panics.
pub(crate) fn run_on_send(interceptors: &[Arc<dyn ProducerInterceptor>], mut record: ProducerRecord) -> ProducerRecord {
    for (i, interceptor) in interceptors.iter().enumerate() {
        let given = record.clone();
        match catch_unwind(AssertUnwindSafe(|| interceptor.on_send(given))) {
            Ok(r) => record = r,
            Err(panic) => {
                tracing::warn!("producer interceptor {i} panicked in on_send ({}); record passed on unchanged", panic_message(&panic));
            }
        }
    }
    record
}

/// Runs `on_acknowledgement` on every interceptor, in order, skipping any that panics.
pub(crate) fn run_on_acknowledgement(interceptors: &[Arc<dyn ProducerInterceptor>], result: &Result<RecordMetadata, SendError>) {
    for (i, interceptor) in interceptors.iter().enumerate() {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| interceptor.on_acknowledgement(result.as_ref()))) {
            tracing::warn!("producer interceptor {i} panicked in on_acknowledgement ({})", panic_message(&panic));
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Append(&'static str);
    impl ProducerInterceptor for Append {
        fn on_send(&self, mut r: ProducerRecord) -> ProducerRecord {
            let mut v = r.value.map(|v| v.to_vec()).unwrap_or_default();
            v.extend_from_slice(self.0.as_bytes());
            r.value = Some(Bytes::from(v));
            r
        }
        fn on_acknowledgement(&self, _: Result<&RecordMetadata, &SendError>) {}
    }

    struct Panics(Mutex<u32>);
    impl ProducerInterceptor for Panics {
        fn on_send(&self, _: ProducerRecord) -> ProducerRecord {
            panic!("on_send boom")
        }
        fn on_acknowledgement(&self, _: Result<&RecordMetadata, &SendError>) {
            *self.0.lock().unwrap() += 1;
            panic!("on_acknowledgement boom")
        }
    }

    // Kafka's ProducerInterceptors: chained in order; an interceptor that
    // throws is logged and the previous record goes on.
    #[test]
    fn interceptors_chain_in_order_and_a_panicking_one_is_skipped() {
        let panics = Arc::new(Panics(Mutex::new(0)));
        let list: Vec<Arc<dyn ProducerInterceptor>> = vec![Arc::new(Append("-a")), panics.clone(), Arc::new(Append("-b"))];
        let r = run_on_send(&list, ProducerRecord::new("t", None, Some(Bytes::from_static(b"v"))));
        assert_eq!(r.value.as_deref(), Some(&b"v-a-b"[..]));
        assert_eq!(r.topic, "t");
        let md = RecordMetadata { topic: "t".into(), partition: 0, offset: 3, timestamp: 0 };
        run_on_acknowledgement(&list, &Ok(md));
        assert_eq!(*panics.0.lock().unwrap(), 1);
    }
}
