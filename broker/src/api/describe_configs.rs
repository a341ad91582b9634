//! DescribeConfigs for topic and broker resources, from this broker's copy
//! of the image. A topic config is reported with its source as Kafka does:
//! TOPIC_CONFIG when the topic overrides it, STATIC_BROKER_CONFIG when the
//! broker's settings supply it (under the synonym, e.g. `log.retention.ms`),
//! DEFAULT_CONFIG otherwise.

use super::incremental_alter_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::config::{describe_topic_config, ConfigKind, ConfigSource, TopicConfigDef, TOPIC_CONFIGS};
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

/// Broker settings reported with their defaults besides the topic synonyms.
const BROKER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "true"),
    ("default.replication.factor", "1"),
    ("num.partitions", "1"),
    ("replica.lag.time.max.ms", "30000"),
];

/// DescribeConfigs ConfigType (v3+).
fn config_type(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Bool => 1,
        ConfigKind::Compression => 2,
        ConfigKind::Long { .. } => 5,
        ConfigKind::CleanupPolicy => 7,
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn handle(shared: &BrokerShared, req: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let image = shared.image.lock().unwrap().clone();
    let broker = &shared.config.settings;
    let results = req
        .resources
        .iter()
        .map(|r| {
            let res = DescribeConfigsResult::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
            let wanted = |name: &str| r.configuration_keys.as_ref().is_none_or(|ks| ks.iter().any(|k| k.as_str() == name));
            let entry = |name: &str, value: &str, source: ConfigSource, def: Option<&TopicConfigDef>| {
                let mut e = DescribeConfigsResourceResult::default()
                    .with_name(s(name))
                    .with_value(Some(s(value)))
                    .with_config_source(source as i8);
                if version >= 3 {
                    e = e.with_config_type(def.map_or(2, |d| config_type(d.kind)));
                }
                e
            };
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = image.topics.get(r.resource_name.as_str()) else {
                        return res
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(s("unknown topic")));
                    };
                    let configs = TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            let (value, source) = describe_topic_config(d, broker, &topic.configs);
                            let mut e = entry(d.name, &value, source, Some(d));
                            if req.include_synonyms {
                                let mut syn = Vec::new();
                                if let Some(v) = topic.configs.get(d.name) {
                                    syn.push(DescribeConfigsSynonym::default().with_name(s(d.name)).with_value(Some(s(v))).with_source(ConfigSource::TopicConfig as i8));
                                }
                                if let Some(v) = broker.get(d.broker_synonym) {
                                    syn.push(DescribeConfigsSynonym::default().with_name(s(d.broker_synonym)).with_value(Some(s(v))).with_source(ConfigSource::StaticBrokerConfig as i8));
                                }
                                syn.push(DescribeConfigsSynonym::default().with_name(s(d.broker_synonym)).with_value(Some(s(d.default))).with_source(ConfigSource::DefaultConfig as i8));
                                e = e.with_synonyms(syn);
                            }
                            e
                        })
                        .collect();
                    res.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != shared.config.id.to_string() {
                        return res
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(s("ask the named broker for its configs")));
                    }
                    let mut all: std::collections::BTreeMap<&str, (String, ConfigSource, Option<&TopicConfigDef>)> = std::collections::BTreeMap::new();
                    for d in TOPIC_CONFIGS {
                        all.insert(d.broker_synonym, (d.default.to_string(), ConfigSource::DefaultConfig, Some(d)));
                    }
                    for (k, v) in BROKER_DEFAULTS {
                        all.insert(k, (v.to_string(), ConfigSource::DefaultConfig, None));
                    }
                    for (k, v) in &broker.0 {
                        let def = TOPIC_CONFIGS.iter().find(|d| d.broker_synonym == k);
                        all.insert(k.as_str(), (v.clone(), ConfigSource::StaticBrokerConfig, def));
                    }
                    let configs = all
                        .into_iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, (v, source, def))| entry(k, &v, source, def).with_read_only(true))
                        .collect();
                    res.with_configs(configs)
                }
                _ => res.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(s("unsupported resource type"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
