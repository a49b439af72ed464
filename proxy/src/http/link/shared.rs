//! What a connection's task and its streams' tasks share: the connection's state and a mailbox
//! per stream.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::Bytes;
use http_body::Frame;
use weft_http2::connection::{Connection, StreamIdHasher};
use weft_http2::frame::Reason;

/// A connection shared by its task and its streams' tasks.
#[derive(Clone)]
pub struct Link(Arc<Mutex<Shared>>);

pub struct Shared {
    pub conn: Connection,
    pub slots: HashMap<u32, Slot, BuildHasherDefault<StreamIdHasher>>,
    /// The connection's task, to wake when there is output to write.
    pub writer: Option<Waker>,
    /// Tasks waiting for the connection to change: for the peer's `SETTINGS`, for a stream to
    /// end so that another may open (client).
    pub waiters: Vec<Waker>,
    /// The connection's task has ended.
    pub closed: bool,
    /// Nothing will open a stream on it any more (a client's pool let it go): it ends once its
    /// streams are done.
    pub released: bool,
}

/// A stream's mailbox: what the peer sent on it, for the body's reader, and how it ended.
#[derive(Default)]
pub struct Slot {
    /// The answer's head (client), once it came.
    pub answer: Option<http::Response<()>>,
    pub frames: VecDeque<Frame<Bytes>>,
    /// The peer's half ended after the last of `frames`.
    pub ended: bool,
    pub reset: Option<Reason>,
    /// The connection ended under the stream.
    pub lost: bool,
    /// The body's reader (or, on a client, whoever waits for the answer's head).
    pub reader: Option<Waker>,
    /// The stream's sender, waiting for room to send or for a reset.
    pub sender: Option<Waker>,
    /// Nothing reads the peer's half any more (the body was dropped, or there was none), and
    /// this side's half is done (the answer, or the request's body, was sent or given up).
    pub body_dropped: bool,
    pub task_done: bool,
}

impl Link {
    pub fn new(conn: Connection) -> Link {
        Link(Arc::new(Mutex::new(Shared {
            conn,
            slots: HashMap::default(),
            writer: None,
            waiters: Vec::new(),
            closed: false,
            released: false,
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding it leaves the connection's state as it was at some frame's
        // boundary at worst; serving on is better than failing every stream.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Shared {
    /// Wakes the connection's task to write what has been queued.
    pub fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    pub fn wake_waiters(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }

    /// This side's half of the stream is done (`sending`), or its reader is; the slot goes once
    /// both are. A reader that goes before the peer's half ended tells the connection it wants
    /// no more of it.
    pub fn release_slot(&mut self, stream: u32, sending: bool) {
        let Some(slot) = self.slots.get_mut(&stream) else {
            return;
        };
        if sending {
            slot.task_done = true;
        } else {
            slot.body_dropped = true;
            slot.frames.clear();
            if !slot.ended && slot.reset.is_none() {
                self.conn.stop_receiving(stream);
                if let Some(waker) = self.writer.take() {
                    waker.wake();
                }
            }
        }
        if slot.task_done && slot.body_dropped {
            self.slots.remove(&stream);
            self.wake_waiters();
        }
    }
}

impl Slot {
    pub fn wake(&mut self) {
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
        if let Some(waker) = self.sender.take() {
            waker.wake();
        }
    }
}
