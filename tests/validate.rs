//! Every configuration type has a public `validate()`: the defaults pass,
//! a bad setting is an `InvalidArgument` naming that setting, and the call
//! that takes the configuration refuses it the same way before it opens,
//! dials or starts anything.
#![allow(clippy::unwrap_used)] // a test or example fails loudly on purpose

use std::time::Duration;

use syncmq::block::{BlockConfig, RuntimeConfig};
use syncmq::outbox::OutboxConfig;
use syncmq::{ChannelSpec, Error, Mode, Result};

/// The setting a validation error names; panics on anything else.
fn field(result: Result<()>) -> String {
    match result {
        Err(Error::InvalidArgument { name, .. }) => name,
        other => panic!("expected an InvalidArgument, got {other:?}"),
    }
}

#[test]
fn channel_block_and_outbox_configs() {
    ChannelSpec::new("events", Mode::Both).validate().unwrap();
    assert_eq!(field(ChannelSpec::new("", Mode::Both).validate()), "name");

    BlockConfig::new("reader").validate().unwrap();
    assert_eq!(field(BlockConfig::new("").validate()), "block.name");
    assert_eq!(
        field(
            BlockConfig::new("reader")
                .with_responsibility("a\nb")
                .validate()
        ),
        "block.responsibility"
    );
    RuntimeConfig::new().validate().unwrap();

    OutboxConfig::default().validate().unwrap();
    assert_eq!(
        field(OutboxConfig::default().with_batch_size(0).validate()),
        "batch_size"
    );
}

#[cfg(feature = "durable")]
#[test]
fn queue_durable_and_server_configs() {
    use syncmq::queue::{QueueConfig, TopicConfig};
    use syncmq::server::{QueueClient, QueueClientConfig, QueueServerConfig};
    use syncmq::{Adapter, ChannelSpec, DurableAdapter, Mode};

    TopicConfig::new("t", ["a"]).validate().unwrap();
    assert_eq!(
        field(TopicConfig::new("t", ["a"]).with_priorities(0).validate()),
        "topic.priorities"
    );
    assert_eq!(
        field(
            QueueConfig::new()
                .with_topic(TopicConfig::new("t", ["a", "a"]))
                .validate()
        ),
        "topics[0].subscribers[1]"
    );

    // Below 1 ms an ack timeout would be stored as 0 ms: no ack timeout.
    let sub_ms = ChannelSpec::new("jobs", Mode::Both).with_ack_timeout(Duration::from_micros(500));
    assert_eq!(field(sub_ms.validate()), "ack_timeout");
    let dir = tempfile::tempdir().unwrap();
    let adapter = DurableAdapter::open(dir.path()).unwrap();
    assert_eq!(field(adapter.new_channel(sub_ms)), "ack_timeout");
    adapter.close().unwrap();

    QueueServerConfig::new().validate().unwrap();
    assert_eq!(
        field(QueueServerConfig::new().with_max_connections(0).validate()),
        "max_connections"
    );

    QueueClientConfig::new().validate().unwrap();
    for (config, name) in [
        (
            QueueClientConfig::new().with_connect_timeout(Duration::ZERO),
            "connect_timeout",
        ),
        (
            QueueClientConfig::new().with_request_timeout(Duration::ZERO),
            "request_timeout",
        ),
        (QueueClientConfig::new().with_batch(0), "batch"),
    ] {
        assert_eq!(field(config.validate()), name);
        // Refused before dialling: nothing listens on port 1.
        assert_eq!(
            field(QueueClient::connect_with("127.0.0.1:1", config).map(drop)),
            name
        );
    }
}

#[cfg(feature = "rabbitmq")]
#[test]
fn rabbitmq_configs() {
    use syncmq::rabbitmq::{
        ConnectionConfig, ConsumerOptions, PublisherConfig, RabbitClient, RabbitClientConfig,
    };

    // Nothing listens on port 1; no test here gets as far as dialling.
    const URL: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

    ConnectionConfig::new(URL).validate().unwrap();
    assert_eq!(field(ConnectionConfig::new("not a url").validate()), "url");
    assert_eq!(
        field(
            ConnectionConfig::new(URL)
                .with_heartbeat(Duration::ZERO)
                .validate()
        ),
        "heartbeat"
    );

    PublisherConfig::new().validate().unwrap();
    assert_eq!(
        field(PublisherConfig::new().with_window(0).validate()),
        "window"
    );

    ConsumerOptions::new("orders", "order.created")
        .validate()
        .unwrap();
    assert_eq!(
        field(
            ConsumerOptions::new("orders", "order.created")
                .with_prefetch(0)
                .validate()
        ),
        "prefetch"
    );

    RabbitClientConfig::new(URL, "billing").validate().unwrap();
    assert_eq!(
        field(RabbitClientConfig::new(URL, "").validate()),
        "service"
    );
    let bad_window = RabbitClientConfig::new(URL, "billing")
        .with_publisher(PublisherConfig::new().with_window(0));
    assert_eq!(field(bad_window.validate()), "window");
    assert_eq!(field(RabbitClient::start(bad_window).map(drop)), "window");
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_config() {
    use syncmq::outbox::PostgresStoreConfig;

    PostgresStoreConfig::new("host=localhost")
        .validate()
        .unwrap();
    assert_eq!(
        field(
            PostgresStoreConfig::new("host=localhost")
                .with_table("drop table x;")
                .validate()
        ),
        "table"
    );
}
