//! The admin client: topic creation (CreateTopics v7 to any broker, which
//! forwards to the controller) and waiting for partition leaders.

use super::config::AdminConfig;
use super::error::ClientError;
use super::metadata::Cluster;
use super::network::Pool;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

pub const CREATE_TOPICS_VERSION: i16 = 7;
/// TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

pub struct Admin {
    cluster: Cluster,
    config: AdminConfig,
}

impl Admin {
    pub fn new(bootstrap: Vec<SocketAddr>, config: AdminConfig) -> Admin {
        let pool = Pool::new(config.network.clone());
        Admin { cluster: Cluster::new(bootstrap, pool), config }
    }

    /// Creates a topic, retrying retriable and network errors until
    /// default.api.timeout.ms. TOPIC_ALREADY_EXISTS counts as success: a
    /// retried create whose first attempt succeeded sees it.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<(), ClientError> {
        let rf = i16::try_from(replication_factor).map_err(|_| {
            ClientError::broker(38, format!("create topic {name}"), Some("replication factor out of range"))
        })?;
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(
                configs
                    .into_iter()
                    .map(|(k, v)| CreatableTopicConfig::default().with_name(StrBytes::from_string(k)).with_value(Some(StrBytes::from_string(v))))
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(self.config.network.request_timeout_ms.min(i32::MAX as u64) as i32)
            .with_validate_only(false);
        self.retrying(&format!("create topic {name}"), || async {
            let candidates = self.cluster.any_brokers();
            let (_, resp) = self
                .cluster
                .call_any(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, RequestKind::CreateTopics(request.clone()), &candidates)
                .await?;
            let ResponseKind::CreateTopics(resp) = resp else {
                return Err(ClientError::Malformed("CreateTopics: wrong response kind".into()));
            };
            let r = resp
                .topics
                .iter()
                .find(|t| t.name.0.as_str() == name)
                .ok_or_else(|| ClientError::Malformed(format!("CreateTopics response lacks {name}")))?;
            match r.error_code {
                0 | TOPIC_ALREADY_EXISTS => Ok(()),
                code => Err(ClientError::broker(code, format!("create topic {name}"), r.error_message.as_ref().map(|m| m.as_str()))),
            }
        })
        .await
    }

    /// Polls Metadata until the topic has `partitions` partitions, each
    /// with a leader, or `timeout` passes.
    pub async fn wait_for_leaders(&self, topic: &str, partitions: i32, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.cluster.invalidate();
            let last = match self.cluster.partitions(topic).await {
                Ok(ps) if ps.len() as i32 >= partitions && ps.iter().all(|p| p.leader >= 0) => return Ok(()),
                Ok(ps) => format!("{} partitions, {} with a leader", ps.len(), ps.iter().filter(|p| p.leader >= 0).count()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout(format!("waiting for {partitions} leaders of {topic}: {last}")));
            }
            tokio::time::sleep(Duration::from_millis(self.config.network.retry_backoff_ms)).await;
        }
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or
    /// default.api.timeout.ms passes.
    async fn retrying<F, Fut>(&self, what: &str, op: F) -> Result<(), ClientError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), ClientError>>,
    {
        let deadline = Instant::now() + Duration::from_millis(self.config.default_api_timeout_ms);
        loop {
            match op().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!("{what}: retrying after {e}");
                    self.cluster.invalidate();
                    tokio::time::sleep(Duration::from_millis(self.config.network.retry_backoff_ms)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
