//! The publisher block: publishes each bag's body, then replies to the
//! sender with its id and the outcome.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::eventually;
use syncmq::block::{
    self, Bag, Block, BlockConfig, Controller, InitContext, PublisherBlock, Registry, Runtime,
    RuntimeConfig, Value,
};
use syncmq::{Adapter, ChannelSink, ChannelSpec, Error, Message, Mode, SimpleAdapter, Sink};

const LIMIT: Duration = Duration::from_secs(10);

/// Sends three bags to `publisher` from `run` and keeps the replies.
struct Client {
    replies: Arc<Mutex<Vec<Bag>>>,
}

impl Block for Client {
    fn init(&self, _: &InitContext<'_>) -> syncmq::Result<()> {
        Ok(())
    }
    fn run(&self, ctl: Controller) {
        let publisher = ctl.controller("publisher").unwrap();
        for (id, body) in [(1, Some("one")), (2, None), (3, Some("three"))] {
            let mut bag = Bag::new().with(block::ID, id);
            if let Some(body) = body {
                bag.insert(block::BODY, body);
            }
            assert!(publisher.enqueue(bag));
        }
    }
    fn finish(&self) -> syncmq::Result<()> {
        Ok(())
    }
    fn on_enqueue(&self, _: &Controller, bag: Bag) {
        self.replies.lock().unwrap().push(bag);
    }
}

/// Refuses the body "three" at the flush, as a broker's nack would; keeps
/// what it flushed.
struct Picky {
    sent: Vec<Vec<u8>>,
    flushed: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Sink for Picky {
    fn send(&mut self, message: &Message) -> syncmq::Result<()> {
        self.sent.push(message.body().to_vec());
        Ok(())
    }

    fn flush(&mut self) -> syncmq::Result<()> {
        let sent = std::mem::take(&mut self.sent);
        if sent.iter().any(|b| b == b"three") {
            return Err(Error::refused(0, "nacked"));
        }
        self.flushed.lock().unwrap().extend(sent);
        Ok(())
    }
}

fn run_with<S: Sink>(make: impl Fn() -> S + Send + Sync + Clone + 'static) -> Vec<Bag> {
    let replies = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    registry
        .register("publisher", move |_| {
            let make = make.clone();
            PublisherBlock::new(move |_| Ok(make()))
        })
        .unwrap();
    let r = replies.clone();
    registry
        .register("client", move |_| Client { replies: r.clone() })
        .unwrap();
    let config = RuntimeConfig::new()
        .with_block(BlockConfig::new("publisher"))
        .with_block(BlockConfig::new("client"));
    let runtime = Runtime::start(&config, &registry).unwrap();
    eventually(LIMIT, "three replies", || {
        replies.lock().unwrap().len() == 3
    });
    runtime.close().unwrap();
    let replies = replies.lock().unwrap().clone();
    replies
}

#[test]
fn replies_say_which_bag_was_published_and_why_not() {
    let published = Arc::new(Mutex::new(Vec::new()));
    let p = published.clone();
    let replies = run_with(move || Picky {
        sent: Vec::new(),
        flushed: p.clone(),
    });
    let summary: Vec<(i64, bool, Option<String>, Option<String>)> = replies
        .iter()
        .map(|b| {
            (
                b.get(block::ID).and_then(Value::as_i64).unwrap(),
                b.get(block::OK).and_then(Value::as_bool).unwrap(),
                b.get(block::ERROR)
                    .and_then(Value::as_str)
                    .map(String::from),
                b.from().map(String::from),
            )
        })
        .collect();
    assert_eq!(summary[0], (1, true, None, Some("publisher".into())));
    assert_eq!((summary[1].0, summary[1].1), (2, false));
    assert!(summary[1].2.as_deref().unwrap().contains("`body`"));
    assert_eq!((summary[2].0, summary[2].1), (3, false));
    assert!(summary[2].2.as_deref().unwrap().contains("nacked"));
    assert_eq!(*published.lock().unwrap(), [b"one".to_vec()]);
}

#[test]
fn a_channel_sink_publishes_into_the_channel() {
    let adapter = Arc::new(SimpleAdapter::new());
    adapter
        .new_channel(ChannelSpec::new("lines", Mode::Both))
        .unwrap();
    let output = adapter.output("lines").unwrap();
    let a = adapter.clone();
    let replies = run_with(move || ChannelSink::new(&*a, "lines").unwrap());
    assert_eq!(oks(&replies), [true, false, true]);
    let bodies: Vec<Vec<u8>> = (0..2)
        .map(|_| output.recv_timeout(LIMIT).unwrap().body().to_vec())
        .collect();
    assert_eq!(bodies, [b"one".to_vec(), b"three".to_vec()]);
    adapter.close().unwrap();
    assert!(matches!(
        ChannelSink::new(&*adapter, "lines"),
        Err(Error::Closed(_))
    ));
}

fn oks(replies: &[Bag]) -> Vec<bool> {
    replies
        .iter()
        .map(|b| b.get(block::OK).and_then(Value::as_bool).unwrap())
        .collect()
}

#[cfg(feature = "durable")]
#[test]
fn a_queue_sink_answers_ok_once_the_body_is_in_the_queue() {
    use syncmq::queue::{Queue, QueueConfig, TopicConfig};
    use syncmq::QueueSink;

    let dir = tempfile::tempdir().unwrap();
    let config = || QueueConfig::new().with_topic(TopicConfig::new("lines", ["store"]));
    let queue = Arc::new(Queue::open(dir.path(), config()).unwrap());
    let q = queue.clone();
    let replies = run_with(move || QueueSink::new(q.clone(), "lines").unwrap());
    assert_eq!(oks(&replies), [true, false, true]);
    // A closed queue is an error, not a silent drop.
    queue.close().unwrap();
    let closed = QueueSink::new(queue.clone(), "lines").and_then(|mut sink| {
        sink.send(&Message::new(b"late".to_vec()))?;
        sink.flush()
    });
    assert!(matches!(closed, Err(Error::Closed(_))), "{closed:?}");
    drop(queue);
    // Opened again: what was answered `ok` is there, in order.
    let queue = Queue::open(dir.path(), config()).unwrap();
    let store = queue.subscribe("lines", "store").unwrap();
    let bodies: Vec<Vec<u8>> = store
        .next_batch(10, Some(Duration::ZERO))
        .unwrap()
        .into_iter()
        .map(|r| r.message.body().to_vec())
        .collect();
    assert_eq!(bodies, [b"one".to_vec(), b"three".to_vec()]);
    drop(store);
    queue.close().unwrap();
}

#[cfg(feature = "rabbitmq")]
#[test]
fn a_rabbit_sink_answers_ok_once_the_broker_confirmed() {
    use syncmq::rabbitmq::{Connection, ConnectionConfig, Declaration};
    use syncmq::RabbitSink;

    let Some(url) = common::broker_url() else {
        return;
    };
    let queue = common::unique("blk-pub");
    let connection =
        Connection::with_config(ConnectionConfig::new(&url).with_name(common::unique("blk-pub")))
            .unwrap();
    connection.waiter().wait_connected(LIMIT).unwrap();
    connection
        .declare(vec![Declaration::queue(queue.clone())])
        .unwrap();
    let connection = Arc::new(connection);
    let (c, q) = (connection.clone(), queue.clone());
    let replies = run_with(move || RabbitSink::to_queue(&c, q.clone()).unwrap());
    assert_eq!(oks(&replies), [true, false, true]);
    // Mandatory: a queue that does not exist is an error, not a confirm.
    let mut nowhere = RabbitSink::to_queue(&connection, common::unique("blk-none")).unwrap();
    nowhere.send(&Message::new(b"lost".to_vec())).unwrap();
    let lost = nowhere.flush();
    assert!(
        matches!(lost, Err(Error::Refused { code: 312, .. })),
        "{lost:?}"
    );
    drop(nowhere);
    connection.close().unwrap();

    let mut conn = amiquip::Connection::insecure_open(&url).unwrap();
    let channel = conn.open_channel(None).unwrap();
    let mut bodies = Vec::new();
    while let Some(got) = channel.basic_get(queue.as_str(), true).unwrap() {
        bodies.push(got.delivery.body);
    }
    let _ = conn.close();
    common::delete_queues(&url, &[&queue]);
    assert_eq!(bodies, [b"one".to_vec(), b"three".to_vec()]);
}
