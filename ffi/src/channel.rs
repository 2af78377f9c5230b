//! The two ends of an adapter's channel from C: sends into its input,
//! receives from its output (blocking, with a time limit, or not at all)
//! and the output's readiness fd. A channel is named in each call; its
//! crossbeam ends are fetched from the adapter once and kept in the handle.

use std::ffi::{c_char, c_int};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use syncmq::crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use syncmq::{Adapter, Delivery, Error, Message, Mode, Result};

use crate::adapter::syncmq_adapter;
use crate::args;
use crate::delivery::syncmq_delivery;
use crate::guard::{call, guarded};
use crate::message::syncmq_message;
use crate::watch::Watch;

/// A channel's ends as this handle uses them.
pub(crate) struct Ends {
    name: String,
    mode: Mode,
    input: Option<Sender<Message>>,
    output: Option<Receiver<Delivery>>,
    /// The output's ready thread, started by the first `syncmq_channel_fd`;
    /// from then on every receive takes from its slot.
    watch: Mutex<Option<Arc<Watch>>>,
}

impl Ends {
    /// The ends of the adapter's channel `name` that its mode allows.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Closed`.
    pub(crate) fn fetch(adapter: &dyn Adapter, name: &str) -> Result<Ends> {
        let mode = adapter.mode(name)?;
        let input = mode
            .allows_input()
            .then(|| adapter.input(name))
            .transpose()?;
        let output = mode
            .allows_output()
            .then(|| adapter.output(name))
            .transpose()?;
        Ok(Ends {
            name: name.to_string(),
            mode,
            input,
            output,
            watch: Mutex::default(),
        })
    }

    /// Ends with an output only: deliveries from `output`, named `name` in
    /// errors (a consumer's queue).
    pub(crate) fn output_only(name: &str, output: Receiver<Delivery>) -> Ends {
        Ends {
            name: name.to_string(),
            mode: Mode::Output,
            input: None,
            output: Some(output),
            watch: Mutex::default(),
        }
    }

    fn input(&self) -> Result<&Sender<Message>> {
        self.input.as_ref().ok_or_else(|| self.wrong_mode("input"))
    }

    fn output(&self) -> Result<&Receiver<Delivery>> {
        self.output
            .as_ref()
            .ok_or_else(|| self.wrong_mode("output"))
    }

    fn wrong_mode(&self, operation: &'static str) -> Error {
        Error::WrongMode {
            channel: self.name.clone(),
            mode: self.mode.to_string(),
            operation,
        }
    }

    fn watch(&self) -> MutexGuard<'_, Option<Arc<Watch>>> {
        // Set once, in one assignment: a panic leaves it whole.
        self.watch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `message` into the input, blocking while its buffer is full.
    fn send(&self, message: Message) -> Result<()> {
        self.input()?
            .send(message)
            .map_err(|_| Error::closed(format!("the input of channel `{}`", self.name)))
    }

    /// The next delivery, waiting up to `timeout` (`None`: no limit).
    pub(crate) fn receive(&self, timeout: Option<Duration>) -> Result<Delivery> {
        let output = self.output()?;
        let watch = self.watch().clone();
        let got = match watch {
            Some(watch) => watch.receive(timeout),
            None => match timeout {
                None => output.recv().map(Some).map_err(|_| self.ended()),
                Some(Duration::ZERO) => match output.try_recv() {
                    Ok(delivery) => Ok(Some(delivery)),
                    Err(TryRecvError::Empty) => Ok(None),
                    Err(TryRecvError::Disconnected) => Err(self.ended()),
                },
                Some(timeout) => match output.recv_timeout(timeout) {
                    Ok(delivery) => Ok(Some(delivery)),
                    Err(RecvTimeoutError::Timeout) => Ok(None),
                    Err(RecvTimeoutError::Disconnected) => Err(self.ended()),
                },
            },
        };
        got?.ok_or_else(|| {
            Error::timeout(
                format!("a delivery on channel `{}`", self.name),
                timeout.unwrap_or_default(),
            )
        })
    }

    fn ended(&self) -> Error {
        Error::closed(format!("the output of channel `{}`", self.name))
    }

    /// The output's readiness fd, its ready thread started on first use.
    pub(crate) fn fd(&self) -> Result<c_int> {
        let output = self.output()?;
        let mut watch = self.watch();
        if let Some(watch) = &*watch {
            return Ok(watch.fd());
        }
        let started = Arc::new(Watch::start(&self.name, output.clone())?);
        let fd = started.fd();
        *watch = Some(started);
        Ok(fd)
    }

    /// Stops and joins the ready thread, if one was started.
    pub(crate) fn stop(&self, deadline: Instant) -> Result<()> {
        let watch = self.watch().take();
        watch.map_or(Ok(()), |watch| watch.stop(deadline))
    }
}

/// Sends a copy of `m` into the input of `channel`. The message is only
/// read, so it may be sent again; free it as usual.
///
/// The send blocks while the channel's buffer is full (its `buffer`
/// setting; 0 makes it wait for a reader each time): that is the
/// back-pressure. Returning `SYNCMQ_OK` means the message is in the
/// channel's input, not yet that it is stored or confirmed: the adapter
/// moves it on, and `syncmq_adapter_close` hands on what was sent.
///
/// Ownership: `channel` and `m` are only read during the call. Threads:
/// any; concurrent sends on one channel are fine.
///
/// Errors: `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `a` or `m`, or a NULL,
/// empty or non-UTF-8 `channel`; `SYNCMQ_E_NOT_FOUND` for an unknown
/// channel; `SYNCMQ_E_WRONG_MODE` for an `"Output"` channel;
/// `SYNCMQ_E_CLOSED` once the adapter closed.
///
/// # Safety
///
/// `a` is NULL or a live adapter handle; `channel` is NULL or
/// NUL-terminated; `m` is NULL or a live message no other thread changes.
#[no_mangle]
pub unsafe extern "C" fn syncmq_channel_send(
    a: *mut syncmq_adapter,
    channel: *const c_char,
    m: *const syncmq_message,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let a = unsafe { args::handle(a, "a") }?;
        let channel = unsafe { args::text(channel, "channel") }?;
        let m = unsafe { args::handle(m, "m") }?;
        a.ends(channel)?.send(m.message.clone())
    })
}

/// As `syncmq_channel_send`, with a message of body `body` (`len` bytes,
/// copied) and nothing else: no key, no headers, priority 0.
///
/// Ownership, threads: as `syncmq_channel_send`.
///
/// Errors: as `syncmq_channel_send`, and `SYNCMQ_E_INVALID_ARGUMENT` for a
/// NULL `body` with `len` > 0.
///
/// # Safety
///
/// As `syncmq_channel_send`; `body` is NULL or points to `len` readable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn syncmq_channel_send_bytes(
    a: *mut syncmq_adapter,
    channel: *const c_char,
    body: *const u8,
    len: usize,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let a = unsafe { args::handle(a, "a") }?;
        let channel = unsafe { args::text(channel, "channel") }?;
        let body = unsafe { args::bytes(body, len, "body") }?;
        a.ends(channel)?.send(Message::new(body.to_vec()))
    })
}

/// Takes the next delivery from the output of `channel`: waits up to
/// `timeout_ms` milliseconds for one (0: do not wait; negative: wait
/// without limit).
///
/// Ownership: on `SYNCMQ_OK`, `*out` is a new delivery that the caller
/// owns and ends with exactly one of `syncmq_delivery_ack`,
/// `syncmq_delivery_nack` or `syncmq_delivery_free`; otherwise `*out` is
/// NULL. A delivery stays valid after the adapter is closed. Threads: any;
/// concurrent receives on one channel each get their own deliveries. Once
/// the channel's fd was asked for, the fd is brought up to date before
/// this returns.
///
/// A receive without a limit returns only when a delivery comes or the
/// output ends: closing the adapter cannot wake it (close waits until no
/// thread uses the handle), so a thread that may have to stop should
/// receive with a limit, or wait in `poll()` on `syncmq_channel_fd`.
///
/// Errors: `SYNCMQ_E_TIMEOUT` when none came in time;
/// `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `a` or `out`, or a NULL, empty
/// or non-UTF-8 `channel`; `SYNCMQ_E_NOT_FOUND` for an unknown channel;
/// `SYNCMQ_E_WRONG_MODE` for an `"Input"` channel; `SYNCMQ_E_CLOSED` when
/// the output ended.
///
/// # Safety
///
/// `a` is NULL or a live adapter handle; `channel` is NULL or
/// NUL-terminated; `out` is NULL or points to writable storage for a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn syncmq_channel_receive(
    a: *mut syncmq_adapter,
    channel: *const c_char,
    timeout_ms: i64,
    out: *mut *mut syncmq_delivery,
) -> c_int {
    call(|| {
        // SAFETY: the contract above, for each argument.
        let out = unsafe { args::out(out, "out") }?;
        let a = unsafe { args::handle(a, "a") }?;
        let channel = unsafe { args::text(channel, "channel") }?;
        let timeout = args::timeout(timeout_ms);
        let delivery = a.ends(channel)?.receive(timeout)?;
        *out = Box::into_raw(Box::new(syncmq_delivery::from_delivery(delivery)));
        Ok(())
    })
}

/// The readiness fd of the output of `channel`: readable while a delivery
/// is waiting (or the output ended), for `poll()`, `select()` or `epoll`.
/// Wait for it to be readable, then call `syncmq_channel_receive` with a
/// timeout of 0 until it returns `SYNCMQ_E_TIMEOUT`; each call brings the
/// fd up to date, so never read from it yourself.
///
/// The first call for a channel starts its ready thread
/// (`syncmq-ffi-ready:<channel>`), which moves one delivery at a time from
/// the output into a slot that receives take from, and signals the fd: a
/// watched output holds one delivery ahead of the host (a prefetch of 1).
/// The thread calls nothing of the host's, and is stopped and joined by
/// `syncmq_adapter_close`. Later calls return the same fd.
///
/// Ownership: the fd belongs to the adapter handle and is closed by
/// `syncmq_adapter_close`; do not close, read or write it. Threads: any.
///
/// Errors: returns the fd (>= 0), or a negative code:
/// `SYNCMQ_E_INVALID_ARGUMENT` for a NULL `a` or a NULL, empty or
/// non-UTF-8 `channel`; `SYNCMQ_E_NOT_FOUND`; `SYNCMQ_E_WRONG_MODE` for an
/// `"Input"` channel; `SYNCMQ_E_CLOSED`; `SYNCMQ_E_IO` when the OS refuses
/// the socket pair or the thread.
///
/// # Safety
///
/// `a` is NULL or a live adapter handle; `channel` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn syncmq_channel_fd(
    a: *mut syncmq_adapter,
    channel: *const c_char,
) -> c_int {
    guarded(
        |code| code,
        || {
            // SAFETY: the contract above, for each argument.
            let a = unsafe { args::handle(a, "a") }?;
            let channel = unsafe { args::text(channel, "channel") }?;
            a.ends(channel)?.fd()
        },
    )
}
