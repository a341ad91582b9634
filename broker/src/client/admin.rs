//! The admin client: topic creation (CreateTopics v7 to any broker, which
//! forwards to the controller), partition increases (CreatePartitions v3),
//! topic configs (DescribeConfigs v4, IncrementalAlterConfigs v1),
//! coordinator lookups (FindCoordinator v3) and waiting for partition
//! leaders.

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
pub const CREATE_PARTITIONS_VERSION: i16 = 3;
pub const DESCRIBE_CONFIGS_VERSION: i16 = 4;
pub const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
pub const FIND_COORDINATOR_VERSION: i16 = 3;
/// FindCoordinator key types.
pub const COORDINATOR_GROUP: i8 = 0;
pub const COORDINATOR_TRANSACTION: i8 = 1;
/// ConfigResource.Type.TOPIC / BROKER.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// One described config: its value and where it comes from (Kafka's
/// ConfigSource: 1 topic override, 4 static broker config, 5 default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub value: Option<String>,
    pub source: i8,
}

/// An IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set(String, String),
    Delete(String),
}
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

    /// Grows `topic` to `count` partitions (CreatePartitions). Not retried on
    /// INVALID_PARTITIONS (a retried increase whose first attempt succeeded
    /// reports it too; callers that retry check the count themselves).
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<(), ClientError> {
        use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        use kafka_protocol::messages::CreatePartitionsRequest;
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_count(count)])
            .with_timeout_ms(self.config.network.request_timeout_ms.min(i32::MAX as u64) as i32);
        self.retrying(&format!("create partitions {topic}"), || async {
            let candidates = self.cluster.any_brokers();
            let (_, resp) = self
                .cluster
                .call_any(ApiKey::CreatePartitions, CREATE_PARTITIONS_VERSION, RequestKind::CreatePartitions(request.clone()), &candidates)
                .await?;
            let ResponseKind::CreatePartitions(resp) = resp else {
                return Err(ClientError::Malformed("CreatePartitions: wrong response kind".into()));
            };
            let r = resp.results.first().ok_or_else(|| ClientError::Malformed("CreatePartitions: no result".into()))?;
            match r.error_code {
                0 => Ok(()),
                code => Err(ClientError::broker(code, format!("create partitions {topic}"), r.error_message.as_ref().map(|m| m.as_str()))),
            }
        })
        .await
    }

    /// Every config of a topic (`RESOURCE_TOPIC`) or broker (`RESOURCE_BROKER`,
    /// name = broker id) with its source (DescribeConfigs).
    pub async fn describe_configs(&self, resource_type: i8, name: &str) -> Result<BTreeMap<String, ConfigEntry>, ClientError> {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use kafka_protocol::messages::DescribeConfigsRequest;
        let request = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
        self.retrying(&format!("describe configs {name}"), || async {
            let candidates = self.cluster.any_brokers();
            let candidates = match (resource_type, name.parse::<i32>()) {
                (RESOURCE_BROKER, Ok(id)) => self.cluster.broker_addr(id).await.map(|a| vec![a]).unwrap_or(candidates),
                _ => candidates,
            };
            let (_, resp) = self
                .cluster
                .call_any(ApiKey::DescribeConfigs, DESCRIBE_CONFIGS_VERSION, RequestKind::DescribeConfigs(request.clone()), &candidates)
                .await?;
            let ResponseKind::DescribeConfigs(resp) = resp else {
                return Err(ClientError::Malformed("DescribeConfigs: wrong response kind".into()));
            };
            let r = resp.results.first().ok_or_else(|| ClientError::Malformed("DescribeConfigs: no result".into()))?;
            if r.error_code != 0 {
                return Err(ClientError::broker(r.error_code, format!("describe configs {name}"), r.error_message.as_ref().map(|m| m.as_str())));
            }
            Ok(r.configs
                .iter()
                .map(|c| (c.name.to_string(), ConfigEntry { value: c.value.as_ref().map(|v| v.to_string()), source: c.config_source }))
                .collect())
        })
        .await
    }

    /// Applies SET / DELETE operations to a topic's config overrides
    /// (IncrementalAlterConfigs).
    pub async fn incremental_alter_configs(&self, topic: &str, ops: &[AlterConfigOp]) -> Result<(), ClientError> {
        use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        use kafka_protocol::messages::IncrementalAlterConfigsRequest;
        let configs = ops
            .iter()
            .map(|op| match op {
                AlterConfigOp::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                AlterConfigOp::Delete(k) => AlterableConfig::default().with_name(StrBytes::from_string(k.clone())).with_config_operation(1),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs)]);
        self.retrying(&format!("alter configs {topic}"), || async {
            let candidates = self.cluster.any_brokers();
            let (_, resp) = self
                .cluster
                .call_any(
                    ApiKey::IncrementalAlterConfigs,
                    INCREMENTAL_ALTER_CONFIGS_VERSION,
                    RequestKind::IncrementalAlterConfigs(request.clone()),
                    &candidates,
                )
                .await?;
            let ResponseKind::IncrementalAlterConfigs(resp) = resp else {
                return Err(ClientError::Malformed("IncrementalAlterConfigs: wrong response kind".into()));
            };
            let r = resp.responses.first().ok_or_else(|| ClientError::Malformed("IncrementalAlterConfigs: no result".into()))?;
            match r.error_code {
                0 => Ok(()),
                code => Err(ClientError::broker(code, format!("alter configs {topic}"), r.error_message.as_ref().map(|m| m.as_str()))),
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

    /// The broker id coordinating `key` (a group id with
    /// `COORDINATOR_GROUP`, a transactional id with
    /// `COORDINATOR_TRANSACTION`). Retries COORDINATOR_NOT_AVAILABLE (the
    /// internal topic is being created, or its partition has no leader) until
    /// default.api.timeout.ms.
    pub async fn find_coordinator(&self, key_type: i8, key: &str) -> Result<i32, ClientError> {
        use kafka_protocol::messages::FindCoordinatorRequest;
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(key.to_string())).with_key_type(key_type);
        self.retrying(&format!("find coordinator {key}"), || async {
            let candidates = self.cluster.any_brokers();
            let (_, resp) = self
                .cluster
                .call_any(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, RequestKind::FindCoordinator(request.clone()), &candidates)
                .await?;
            let ResponseKind::FindCoordinator(r) = resp else {
                return Err(ClientError::Malformed("FindCoordinator: wrong response kind".into()));
            };
            match r.error_code {
                0 => Ok(r.node_id.0),
                code => Err(ClientError::broker(code, format!("find coordinator {key}"), r.error_message.as_ref().map(|m| m.as_str()))),
            }
        })
        .await
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or
    /// default.api.timeout.ms passes.
    async fn retrying<T, F, Fut>(&self, what: &str, op: F) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let deadline = Instant::now() + Duration::from_millis(self.config.default_api_timeout_ms);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
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
