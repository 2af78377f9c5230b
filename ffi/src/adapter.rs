//! `syncmq_adapter`: a handle on one of the root crate's channel adapters
//! (simple, durable, RabbitMQ), chosen by name with a JSON configuration,
//! and the calls that open it, create its channels and close it. The
//! calls on a channel's two ends are in `channel.rs`.

use std::collections::HashMap;
use std::ffi::{c_char, c_int};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use syncmq::rabbitmq::PublisherConfig;
use syncmq::{Adapter, ChannelSpec, DurableAdapter, Error, RabbitAdapter, Result, SimpleAdapter};

use crate::args;
use crate::channel::Ends;
use crate::config::{self, DurableJson, RabbitJson, SimpleJson};
use crate::guard::call;
use crate::watch;

/// An adapter handle (opaque). Thread-safe: any number of threads may
/// create channels, send, receive and ask for fds on one handle at once.
#[allow(non_camel_case_types)]
pub struct syncmq_adapter {
    adapter: Box<dyn Adapter>,
    /// Each channel's input sender, output receiver and ready thread, by
    /// name, fetched from the adapter on first use: a send or receive
    /// then asks the adapter nothing.
    channels: Mutex<HashMap<String, Arc<Ends>>>,
}

impl syncmq_adapter {
    fn channels(&self) -> MutexGuard<'_, HashMap<String, Arc<Ends>>> {
        // Each change of the map is one insert: a panic leaves it whole.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ends of channel `name`, fetched from the adapter the first time.
    ///
    /// # Errors
    ///
    /// `NotFound` for a channel the adapter does not have; `Closed`.
    pub(crate) fn ends(&self, name: &str) -> Result<Arc<Ends>> {
        let mut channels = self.channels();
        if let Some(ends) = channels.get(name) {
            return Ok(ends.clone());
        }
        let ends = Arc::new(Ends::fetch(&*self.adapter, name)?);
        channels.insert(name.to_string(), ends.clone());
        Ok(ends)
    }
}

/// The adapter kinds, as `syncmq_adapter_open` names them.
const KINDS: &str = "\"simple\", \"durable\" and \"rabbitmq\"";

/// Opens an adapter of kind `kind` with `config_json`:
///
/// - `"simple"`: in-process channels (crossbeam and forwarding threads;
///   acks are no-ops, nothing survives the process). Config `"{}"` or
///   NULL, optionally `{"close_timeout_ms": 5000}`.
/// - `"durable"`: each channel a topic of the embedded durable queue in
///   directory `path`: `{"path": "/var/lib/app/channels"}`, optionally
///   `"durability": "durable"` (fsync, the default) or `"buffered"`, and
///   `"close_timeout_ms"`.
/// - `"rabbitmq"`: each channel a durable RabbitMQ queue, on a supervised
///   connection: `{"urls": ["amqp://guest:guest@127.0.0.1:5672/%2f"],
///   "shuffle": false}` (several URLs: the nodes of a cluster). A broker
///   that does not answer is not an error: the connection keeps trying.
///
/// Unknown fields are refused.
///
/// Ownership: on success `*out` is a new handle that the caller owns and
/// frees with `syncmq_adapter_close`; on failure `*out` is NULL. `kind`
/// and `config_json` are only read during the call. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `out`, a NULL, empty or
/// unknown `kind` (the message names `kind` and lists the kinds), a NULL
/// `config_json` for a kind other than `"simple"`, JSON that does not
/// parse, an unknown or missing field (the message names it), a bad value
/// (an empty `path`, no `urls`, a malformed URL); `SYNCMQ_E_STORAGE` when
/// the durable directory cannot be opened (another process has it open);
/// `SYNCMQ_E_CORRUPT`; `SYNCMQ_E_IO` when the OS refuses a thread.
///
/// # Safety
///
/// `kind` and `config_json` are NULL or NUL-terminated strings; `out` is
/// NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_adapter_open(
    kind: *const c_char,
    config_json: *const c_char,
    out: *mut *mut syncmq_adapter,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let kind = unsafe { args::text(kind, "kind") }?;
        let json = unsafe { args::optional_text(config_json, "config_json") }?;
        let adapter = open(kind, json)?;
        *out = Box::into_raw(Box::new(syncmq_adapter {
            adapter,
            channels: Mutex::default(),
        }));
        Ok(())
    })
}

/// The adapter of `kind` configured by `json`.
fn open(kind: &str, json: Option<&str>) -> Result<Box<dyn Adapter>> {
    let required = || json.ok_or_else(|| Error::invalid("config_json", "is NULL"));
    Ok(match kind {
        "simple" => {
            let config: SimpleJson = match json {
                Some(json) => config::parse(json, "config_json")?,
                None => SimpleJson::default(),
            };
            Box::new(match config.close_timeout_ms {
                Some(ms) => SimpleAdapter::with_close_timeout(Duration::from_millis(ms)),
                None => SimpleAdapter::new(),
            })
        }
        "durable" => {
            let config: DurableJson = config::parse(required()?, "config_json")?;
            Box::new(DurableAdapter::open_with(&config.path, config.config()?)?)
        }
        "rabbitmq" => {
            let config: RabbitJson = config::parse(required()?, "config_json")?;
            Box::new(RabbitAdapter::with_config(
                config.connection(),
                PublisherConfig::default(),
            )?)
        }
        other => {
            return Err(Error::invalid(
                "kind",
                format!("unknown adapter kind `{other}`: the kinds are {KINDS}"),
            ))
        }
    })
}

/// Creates the channel `spec_json` describes, a JSON channel spec:
/// `{"name": "orders", "mode": "Both"}` with `mode` one of `"Input"`,
/// `"Output"`, `"Both"`, and optionally `"buffer"` (1024), `"instances"`
/// (1), `"priorities"` (1), `"dedupe"` (false), `"ack_timeout_ms"` (0:
/// off), `"max_deliveries"` (0: never). A setting the adapter cannot do is
/// refused, not ignored (the simple adapter takes the defaults only).
///
/// Ownership: `spec_json` is only read during the call. Threads: any.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `a`, a NULL or
/// non-UTF-8 `spec_json`, JSON that does not parse or names an unknown
/// field, a bad value or a setting the adapter refuses (the message names
/// it); `SYNCMQ_E_ALREADY_EXISTS` for a name in use; `SYNCMQ_E_CLOSED`;
/// the adapter's own errors (`SYNCMQ_E_STORAGE`, `SYNCMQ_E_REFUSED` from
/// a broker that refuses the queue).
///
/// # Safety
///
/// `a` is NULL or a live adapter handle; `spec_json` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn syncmq_adapter_new_channel(
    a: *mut syncmq_adapter,
    spec_json: *const c_char,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let a = unsafe { args::handle(a, "a") }?;
        let json = unsafe { args::optional_text(spec_json, "spec_json") }?
            .ok_or_else(|| Error::invalid("spec_json", "is NULL"))?;
        let spec: ChannelSpec = config::parse(json, "spec_json")?;
        a.adapter.new_channel(spec)
    })
}

/// Closes the adapter and frees the handle, whatever the result: stops
/// and joins the channels' ready threads (a delivery one still held is
/// dropped unsettled, which the adapter redelivers as it documents), then
/// closes the adapter, which hands on what was sent (to the outputs, the
/// disk or the broker) and stops its threads. Deliveries already received
/// stay valid and can still be settled. Closing NULL does nothing and
/// returns `SYNCMQ_OK`.
///
/// Ownership: `a` is freed; using it afterwards, or closing it twice, is
/// undefined behaviour, as with `free()`. Threads: any, once no other
/// thread uses `a` (a `syncmq_channel_receive` without a time limit must
/// have returned).
///
/// Errors: `SYNCMQ_E_TIMEOUT` when a ready thread did not stop in time or
/// the adapter could not hand everything on in time (the message says how
/// much was left); the adapter's own errors. The handle is freed anyway.
///
/// # Safety
///
/// `a` is NULL or a live adapter handle that no other thread uses.
#[no_mangle]
pub unsafe extern "C" fn syncmq_adapter_close(a: *mut syncmq_adapter) -> c_int {
    call(|| {
        if a.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle from Box::into_raw, given back once.
        let a = unsafe { Box::from_raw(a) };
        let channels = std::mem::take(&mut *a.channels());
        let deadline = Instant::now() + watch::STOP_TIMEOUT;
        let mut result = Ok(());
        for ends in channels.values() {
            result = result.and(ends.stop(deadline));
        }
        // Our senders and receivers go before the adapter closes, so that
        // it does not wait for a reader that is no more.
        drop(channels);
        result.and(a.adapter.close())
    })
}
