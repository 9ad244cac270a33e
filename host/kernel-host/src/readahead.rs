//! Reading the next chunk while the kernels work on this one: a chunked
//! pass parses (or decodes from its spill) chunk `n + 1` on a thread of its
//! own while the pipeline's steps run on chunk `n`, so on a machine with
//! two cores the parsing costs almost no wall time. At most `depth` chunks
//! wait beside the one being read and the one being worked on, so the
//! memory stays a few chunks' worth; the chunks come in file order, so
//! every partial fit sees them exactly as a sequential pass would.

use crate::error::Error;
use tokio::sync::mpsc;

/// Items made by a reader thread, in order. Dropping it stops the thread
/// at its next item.
pub struct ReadAhead<T> {
    items: mpsc::Receiver<Result<Option<T>, Error>>,
    /// What is read, for the message when the thread dies.
    what: String,
    done: bool,
}

impl<T: Send + 'static> ReadAhead<T> {
    /// Starts a thread that calls `next` until it returns `Ok(None)` or an
    /// error, keeping at most `depth` (at least 1) results ready.
    pub fn spawn(
        what: impl Into<String>,
        depth: usize,
        mut next: impl FnMut() -> Result<Option<T>, Error> + Send + 'static,
    ) -> Result<ReadAhead<T>, Error> {
        let what = what.into();
        let (sender, items) = mpsc::channel(depth.max(1));
        std::thread::Builder::new()
            .name("kernel-host-read".into())
            .spawn(move || {
                loop {
                    let item = next();
                    let last = !matches!(item, Ok(Some(_)));
                    // The receiver is gone (the pass failed or stopped):
                    // nothing more is wanted.
                    if sender.blocking_send(item).is_err() || last {
                        break;
                    }
                }
            })
            .map_err(|e| {
                Error::Host(anyhow::anyhow!("cannot start a thread to read {what}: {e}"))
            })?;
        Ok(ReadAhead {
            items,
            what,
            done: false,
        })
    }

    /// The next item; `Ok(None)` at the end. After an error or the end,
    /// always `Ok(None)`.
    pub async fn next(&mut self) -> Result<Option<T>, Error> {
        if self.done {
            return Ok(None);
        }
        let item = self.items.recv().await;
        self.done = !matches!(item, Some(Ok(Some(_))));
        match item {
            Some(item) => item,
            // The thread ended without saying it was done: it panicked.
            None => Err(Error::Internal(format!(
                "the thread reading {} stopped unexpectedly",
                self.what
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn items_come_in_order_then_the_end() {
        let mut n = 0;
        let mut ahead = ReadAhead::spawn("numbers", 1, move || {
            n += 1;
            Ok((n <= 100).then_some(n))
        })
        .unwrap();
        for want in 1..=100 {
            assert_eq!(ahead.next().await.unwrap(), Some(want));
        }
        assert_eq!(ahead.next().await.unwrap(), None);
        assert_eq!(ahead.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_error_arrives_after_the_items_before_it() {
        let mut n = 0;
        let mut ahead = ReadAhead::spawn("numbers", 2, move || {
            n += 1;
            if n == 3 {
                return Err(Error::Internal("bad row 3".into()));
            }
            Ok(Some(n))
        })
        .unwrap();
        assert_eq!(ahead.next().await.unwrap(), Some(1));
        assert_eq!(ahead.next().await.unwrap(), Some(2));
        let error = ahead.next().await.unwrap_err().to_string();
        assert!(error.contains("bad row 3"), "{error}");
        assert_eq!(ahead.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_reader_that_panics_is_an_error_not_the_end() {
        let mut n = 0;
        let mut ahead = ReadAhead::spawn("the spill", 1, move || {
            n += 1;
            assert!(n < 2, "reader bug");
            Ok(Some(n))
        })
        .unwrap();
        assert_eq!(ahead.next().await.unwrap(), Some(1));
        let error = ahead.next().await.unwrap_err().to_string();
        assert!(error.contains("reading the spill stopped"), "{error}");
    }

    #[tokio::test]
    async fn dropping_it_stops_the_thread_and_reads_at_most_depth_ahead() {
        let made = Arc::new(AtomicUsize::new(0));
        let count = made.clone();
        let mut ahead = ReadAhead::spawn("numbers", 1, move || {
            Ok(Some(count.fetch_add(1, Ordering::SeqCst)))
        })
        .unwrap();
        assert_eq!(ahead.next().await.unwrap(), Some(0));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // One taken, one waiting in the channel, one blocked on sending.
        assert!(made.load(Ordering::SeqCst) <= 3, "{made:?}");
        drop(ahead);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let after = made.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(made.load(Ordering::SeqCst), after, "the thread stopped");
    }
}
