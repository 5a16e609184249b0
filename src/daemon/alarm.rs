//! The event loop's timer for the node's next deadline (`Node::poll_timeout`).
//!
//! One timer, moved rather than re-created per loop turn: creating a tokio
//! `Sleep` each turn registered and removed a timer-wheel entry every time
//! (a lock, two wheel operations), although mostly nothing had changed; a
//! backup's Master_Down timer, moved later with every advert, is now moved
//! in place by tokio without even that.

use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep, sleep_until};

/// Where an idle timer waits (never reached: nothing is due).
const IDLE: Duration = Duration::from_secs(86_400 * 365);

pub struct Alarm {
    timer: Pin<Box<Sleep>>,
    at: Option<Instant>,
}

impl Default for Alarm {
    fn default() -> Self {
        Alarm {
            timer: Box::pin(sleep_until(Instant::now() + IDLE)),
            at: None,
        }
    }
}

impl Alarm {
    /// Due at `at` (never with None). Unchanged deadlines cost nothing.
    pub fn set(&mut self, at: Option<Instant>) {
        if at == self.at {
            return;
        }
        self.at = at;
        self.timer
            .as_mut()
            .reset(at.unwrap_or_else(|| Instant::now() + IDLE));
    }

    /// Resolves when the deadline is reached; never without one.
    pub async fn wait(&mut self) {
        if self.at.is_some() {
            self.timer.as_mut().await;
        } else {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    #[tokio::test]
    async fn fires_at_the_deadline_it_was_moved_to_and_never_without_one() {
        let mut a = Alarm::default();
        let t0 = Instant::now();
        a.set(Some(t0 + Duration::from_secs(60)));
        // Moved earlier, then later again: the last deadline counts.
        a.set(Some(t0 + Duration::from_millis(5)));
        a.set(Some(t0 + Duration::from_millis(30)));
        timeout(Duration::from_secs(5), a.wait())
            .await
            .expect("fires");
        assert!(t0.elapsed() >= Duration::from_millis(30));
        // Fired and set to the same deadline again: still due (the loop
        // must not sleep past a deadline the node has not dealt with).
        a.set(Some(t0 + Duration::from_millis(30)));
        timeout(Duration::from_millis(500), a.wait())
            .await
            .expect("still due");
        a.set(None);
        assert!(
            timeout(Duration::from_millis(50), a.wait()).await.is_err(),
            "nothing due, nothing fires"
        );
    }
}
