//! The order notify hooks run in: at most one waiting job per instance. A
//! transition while an instance's job still waits replaces that job, so a
//! flapping instance runs its hooks for the state it is in now, not for
//! every state it passed through while an earlier hook ran, and the queue
//! is bounded by the number of instances. Instances are served in the
//! order they first queued.

use std::collections::{BTreeMap, VecDeque};

pub struct HookQueue<J> {
    order: VecDeque<String>,
    jobs: BTreeMap<String, J>,
}

impl<J> Default for HookQueue<J> {
    fn default() -> Self {
        HookQueue {
            order: VecDeque::new(),
            jobs: BTreeMap::new(),
        }
    }
}

impl<J> HookQueue<J> {
    /// Queues `job` for `instance`; returns the waiting job it replaced.
    pub fn push(&mut self, instance: &str, job: J) -> Option<J> {
        let old = self.jobs.insert(instance.to_string(), job);
        if old.is_none() {
            self.order.push_back(instance.to_string());
        }
        old
    }

    pub fn pop(&mut self) -> Option<J> {
        let name = self.order.pop_front()?;
        self.jobs.remove(&name)
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flapping_instance_keeps_only_its_latest_state() {
        let mut q = HookQueue::default();
        assert!(q.push("web", "MASTER").is_none());
        assert_eq!(q.push("web", "BACKUP"), Some("MASTER"));
        assert_eq!(q.push("web", "FAULT"), Some("BACKUP"));
        assert_eq!(q.pop(), Some("FAULT"));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn instances_are_served_in_the_order_they_first_queued() {
        let mut q = HookQueue::default();
        q.push("web", "w1");
        q.push("api", "a1");
        q.push("web", "w2");
        assert_eq!(q.pop(), Some("w2"));
        assert_eq!(q.pop(), Some("a1"));
        q.push("web", "w3");
        assert_eq!(q.pop(), Some("w3"));
    }

    #[test]
    fn bounded_by_the_number_of_instances() {
        let mut q = HookQueue::default();
        for i in 0..1000 {
            q.push(if i % 2 == 0 { "web" } else { "api" }, i);
        }
        assert_eq!(q.pop(), Some(998));
        assert_eq!(q.pop(), Some(999));
        assert_eq!(q.pop(), None);
    }
}
