//! The process-wide client idiom of `examples/process_client.rs` (gormq's
//! `Init` / `GetClient`), run against the broker: jobs published through
//! the one client from two threads are handled, and a second `init` is
//! refused instead of opening a second connection.
#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../examples/process_client.rs"]
mod process_client;

#[test]
fn one_client_for_the_process_serves_every_thread_and_init_runs_once() {
    let Some(url) = common::broker_url() else {
        return;
    };
    assert!(process_client::client().is_err(), "nothing before init");
    std::env::set_var("SYNCMQ_AMQP_URL", &url);
    // Both jobs handled (it waits for them), then the client closed.
    process_client::main().unwrap();
    match process_client::init(&url) {
        Err(syncmq::Error::InvalidArgument { reason, .. }) => {
            assert!(reason.contains("twice"), "{reason}");
        }
        other => panic!("a second init: {other:?}"),
    }
}
