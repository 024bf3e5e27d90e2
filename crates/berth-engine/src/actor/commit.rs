//! The commit pipeline: what the rounds decide waits for one group commit (the touched
//! task records and their new state changes, saved together), so that every Docker name is
//! durable before its create call and every change before anyone sees it. One commit is in
//! flight at a time, on the pipeline's own thread (never behind the runtime's other
//! blocking work: credential helpers, reads of the change log), which takes the saver and
//! hands it back; while it runs the next rounds keep planning, and their groups go together
//! into the next commit.

use super::{Actor, Call, Map, Reply};
use crate::error::EngineError;
use crate::telemetry::{EngineTelemetry, Telemetry};
use berth_model::{StateChange, Task};
use berth_store::{Group, Saver, StoreError};
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The commit in flight ended without handing the saver back (its thread is gone).
#[derive(Debug)]
pub(super) struct CommitLost;

/// A save, run on the commit thread.
type Save = Box<dyn FnOnce() + Send>;

/// What waits for one group commit: the group, and what is released once it is durable.
#[derive(Default)]
pub(super) struct Batch {
    group: Group,
    calls: Vec<Call>,
    replies: Vec<Reply>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.group.is_empty() && self.calls.is_empty() && self.replies.is_empty()
    }
}

/// What a save hands back: the saver, and the committed changes or the failure.
pub(super) struct Saved {
    saver: Box<dyn Saver>,
    result: Result<Vec<StateChange>, StoreError>,
}

/// The save running on the commit thread, and the batch it makes durable.
struct Committing {
    save: oneshot::Receiver<Saved>,
    batch: Batch,
}

/// The store, what waits for the next commit, and the commit in flight.
pub(super) struct CommitPipeline {
    /// The store; moved into the commit in flight and handed back.
    saver: Option<Box<dyn Saver>>,
    /// What waits for the next group commit.
    pending: Batch,
    /// Where each task's record is in `pending`'s group.
    pending_records: Map<String, usize>,
    /// The group commit in flight, if any.
    committing: Option<Committing>,
    /// The commit thread's queue (the thread starts with the first save and ends when
    /// the pipeline is dropped).
    thread: Option<mpsc::Sender<Save>>,
    /// Replies sent once this round's group is durable.
    pub after_commit: Vec<Reply>,
}

/// A durable batch: its changes, and the calls and replies it released.
pub(super) struct Durable {
    pub changes: Vec<StateChange>,
    pub calls: Vec<Call>,
    pub replies: Vec<Reply>,
}

impl CommitPipeline {
    /// A pipeline saving to `saver`.
    pub fn new(saver: Box<dyn Saver>) -> CommitPipeline {
        CommitPipeline {
            saver: Some(saver),
            pending: Batch::default(),
            pending_records: Map::default(),
            committing: None,
            thread: None,
            after_commit: Vec::new(),
        }
    }

    /// Run `save` on the commit thread (started now if it is not running).
    fn on_commit_thread(&mut self, save: Save) -> Result<(), EngineError> {
        if self.thread.is_none() {
            let (jobs, queue) = mpsc::channel::<Save>();
            std::thread::Builder::new()
                .name("berth-commit".into())
                .spawn(move || {
                    while let Ok(save) = queue.recv() {
                        save();
                    }
                })
                .map_err(|e| EngineError::InvalidState(format!("start the store's commit thread: {e}")))?;
            self.thread = Some(jobs);
        }
        let jobs = self.thread.as_ref().ok_or_else(|| EngineError::InvalidState("no commit thread".into()))?;
        jobs.send(save).map_err(|_| EngineError::InvalidState("the store's commit thread is gone".into()))
    }

    /// Add a round's group and calls (and the replies waiting for this round) to what the
    /// next commit carries. A task already waiting (planned again while a commit was in
    /// flight) has its record replaced: the group is one commit, so only its latest record
    /// matters.
    pub fn stage(&mut self, group: Group, calls: Vec<Call>) {
        for (arn, record) in group.tasks {
            self.stage_record(arn, record);
        }
        self.pending.group.changes.extend(group.changes);
        self.pending.calls.extend(calls);
        self.pending.replies.append(&mut self.after_commit);
    }

    fn stage_record(&mut self, arn: String, record: Option<Arc<Task>>) {
        match self.pending_records.get(&arn) {
            Some(&at) => self.pending.group.tasks[at].1 = record,
            None => {
                self.pending_records.insert(arn.clone(), self.pending.group.tasks.len());
                self.pending.group.tasks.push((arn, record));
            }
        }
    }

    /// Start the next group commit, if none is in flight and anything waits for one. A
    /// batch with nothing to save (replies or calls only) is durable at once: returned.
    pub fn start(&mut self, telemetry: &Arc<dyn Telemetry>) -> Result<Option<Durable>, EngineError> {
        if self.committing.is_some() || self.pending.is_empty() {
            return Ok(None);
        }
        let Batch { group, calls, replies } = std::mem::take(&mut self.pending);
        self.pending_records.clear();
        if group.is_empty() {
            return Ok(Some(Durable { changes: Vec::new(), calls, replies }));
        }
        let mut saver = self.saver.take().ok_or_else(|| EngineError::InvalidState("the store is gone".into()))?;
        let telemetry = Arc::clone(telemetry);
        let (done, save) = oneshot::channel();
        self.on_commit_thread(Box::new(move || {
            let (tasks, changes) = (group.tasks.len(), group.changes.len());
            let started = std::time::Instant::now();
            let result = saver.save(group);
            let ok = result.is_ok();
            telemetry.record(&EngineTelemetry::StoreCommitted { duration: started.elapsed(), tasks, changes, ok });
            let _ = done.send(Saved { saver, result });
        }))?;
        self.committing = Some(Committing { save, batch: Batch { group: Group::default(), calls, replies } });
        Ok(None)
    }

    /// Whether a commit is in flight.
    pub fn in_flight(&self) -> bool {
        self.committing.is_some()
    }

    /// Wait for the commit in flight (never resolves when there is none).
    pub async fn wait(&mut self) -> Result<Saved, CommitLost> {
        match self.committing.as_mut() {
            Some(c) => (&mut c.save).await.map_err(|_| CommitLost),
            None => std::future::pending().await,
        }
    }

    /// The commit in flight ended: the saver is back; its batch is durable, or the store
    /// failed (those waiting for the batch learn why; the engine stops).
    pub fn done(&mut self, joined: Result<Saved, CommitLost>) -> Result<Option<Durable>, EngineError> {
        let Saved { saver, result } =
            joined.map_err(|_| EngineError::InvalidState("the store's commit thread failed during a save".into()))?;
        self.saver = Some(saver);
        let Some(Committing { batch, .. }) = self.committing.take() else { return Ok(None) };
        match result {
            Ok(changes) => Ok(Some(Durable { changes, calls: batch.calls, replies: batch.replies })),
            Err(e) => {
                // Told as StoreCommitted { ok: false } by the save, and as Stopped by the loop.
                let e = Arc::new(EngineError::Store(e));
                for reply in batch.replies {
                    reply.err(EngineError::Stopped(Arc::clone(&e)));
                }
                Err(EngineError::Stopped(e))
            }
        }
    }

    /// The loop ends: let go of the store (unless a commit still holds it), and hand back
    /// every reply still waiting.
    pub fn close(&mut self) -> Vec<Reply> {
        if self.committing.is_none() {
            self.saver = None;
        }
        let mut replies: Vec<Reply> = self.after_commit.drain(..).collect();
        replies.append(&mut self.pending.replies);
        replies
    }
}

impl Actor {
    /// Start the next group commit if one can start; release at once a batch that has
    /// nothing to save.
    pub(super) fn start_commit(&mut self) -> Result<(), EngineError> {
        if let Some(durable) = self.commits.start(&self.config.telemetry)? {
            self.release(durable);
        }
        Ok(())
    }

    /// A group commit ended: on success its changes go to the log, its replies are sent and
    /// its Docker calls pass the gate; then the next commit, if anything waits.
    pub(super) fn commit_done(&mut self, joined: Result<Saved, CommitLost>) -> Result<(), EngineError> {
        if let Some(durable) = self.commits.done(joined)? {
            self.release(durable);
        }
        self.start_commit()
    }

    fn release(&mut self, durable: Durable) {
        let Durable { changes, calls, replies } = durable;
        if !changes.is_empty() {
            self.config.telemetry.record(&EngineTelemetry::ChangesCommitted(&changes));
        }
        self.log.append(changes);
        for reply in replies {
            reply.ok();
        }
        self.pass_gate(calls);
    }

    /// Wait for the commit in flight, if any (at shutdown).
    pub(super) async fn finish_commits(&mut self) -> Result<(), EngineError> {
        while self.commits.in_flight() {
            let joined = self.commits.wait().await;
            self.commit_done(joined)?;
        }
        Ok(())
    }
}
