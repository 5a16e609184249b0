//! The node's instances, with two indexes kept beside them: which
//! instance a received advert is for, and which instances are due when.
//! A thousand instances at 100 ms adverts bring the node some 10 000
//! adverts and 10 000 timers a second; scanning every instance for each
//! made the cost per event grow with the instance count, and the event
//! loop fell behind.
//!
//! Every mutable access to a member files it for a fresh look at the end
//! of the event (`settle`): whatever path changes its timers or its
//! interface, the indexes follow without each path having to say so.

use super::member::Member;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Index, IndexMut};
use std::time::Duration;

/// What a received advert is matched on: interface index, IPv4, VRID.
pub type RouteKey = (u32, bool, u8);

#[derive(Default)]
pub struct Members {
    list: Vec<Member>,
    /// Per member, what the indexes hold for it.
    filed: Vec<Filed>,
    /// Members touched since the last `settle`.
    dirty: Vec<usize>,
    /// A removal shifted the indices: `settle` files everything again.
    rebuild: bool,
    by_deadline: BTreeSet<(Duration, usize)>,
    /// Several instances may share a key (a declaration mistake); the
    /// first one takes the adverts, as a scan in order would.
    by_route: BTreeMap<RouteKey, BTreeSet<usize>>,
}

#[derive(Clone, Copy)]
struct Filed {
    deadline: Option<Duration>,
    route: RouteKey,
    dirty: bool,
}

fn route_key(m: &Member) -> RouteKey {
    (m.plan.link.index, m.plan.v4, m.core.config().vrid)
}

impl Members {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Member> {
        self.list.iter()
    }

    pub fn push(&mut self, m: Member) {
        let f = Filed {
            deadline: None,
            route: route_key(&m),
            dirty: true,
        };
        self.by_route
            .entry(f.route)
            .or_default()
            .insert(self.list.len());
        self.dirty.push(self.list.len());
        self.list.push(m);
        self.filed.push(f);
    }

    pub fn remove(&mut self, i: usize) -> Member {
        self.filed.remove(i);
        self.rebuild = true;
        self.list.remove(i)
    }

    /// Brings the indexes in line with the members touched since the
    /// last call.
    pub fn settle(&mut self) {
        if self.rebuild {
            self.rebuild = false;
            self.dirty.clear();
            self.by_deadline.clear();
            self.by_route.clear();
            for (i, m) in self.list.iter().enumerate() {
                let f = Filed {
                    deadline: m.deadline(),
                    route: route_key(m),
                    dirty: false,
                };
                if let Some(t) = f.deadline {
                    self.by_deadline.insert((t, i));
                }
                self.by_route.entry(f.route).or_default().insert(i);
                self.filed[i] = f;
            }
            return;
        }
        // Taken and put back, so that its capacity stays.
        let mut dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            let m = &self.list[i];
            let (deadline, route) = (m.deadline(), route_key(m));
            let f = &mut self.filed[i];
            f.dirty = false;
            if f.deadline != deadline {
                if let Some(t) = f.deadline {
                    self.by_deadline.remove(&(t, i));
                }
                if let Some(t) = deadline {
                    self.by_deadline.insert((t, i));
                }
                f.deadline = deadline;
            }
            if f.route != route {
                if let Some(s) = self.by_route.get_mut(&f.route) {
                    s.remove(&i);
                    if s.is_empty() {
                        self.by_route.remove(&f.route);
                    }
                }
                self.by_route.entry(route).or_default().insert(i);
                f.route = route;
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn settled(&self) -> bool {
        self.dirty.is_empty() && !self.rebuild
    }

    /// The earliest deadline of any member.
    /// The deadlines in time order, with their members; only once
    /// settled (`settle`), else None.
    pub fn deadlines(&self) -> Option<impl Iterator<Item = (Duration, usize)> + '_> {
        self.settled().then(|| self.by_deadline.iter().copied())
    }

    pub fn next_deadline(&self) -> Option<Duration> {
        if !self.settled() {
            return self.list.iter().filter_map(Member::deadline).min();
        }
        self.by_deadline.first().map(|(t, _)| *t)
    }

    /// The members due at `now`, in index order (the order a scan would
    /// have handled them in), into `v` (its old contents dropped).
    pub fn due(&self, now: Duration, v: &mut Vec<usize>) {
        v.clear();
        if self.settled() {
            v.extend(
                self.by_deadline
                    .iter()
                    .take_while(|(t, _)| *t <= now)
                    .map(|(_, i)| *i),
            );
        } else {
            v.extend(
                (0..self.list.len()).filter(|i| self.list[*i].deadline().is_some_and(|t| t <= now)),
            );
        }
        v.sort_unstable();
    }

    /// The member that takes adverts for this key.
    pub fn route(&self, key: RouteKey) -> Option<usize> {
        if !self.settled() {
            return self.list.iter().position(|m| route_key(m) == key);
        }
        self.by_route.get(&key).and_then(|s| s.first().copied())
    }
}

impl Index<usize> for Members {
    type Output = Member;
    fn index(&self, i: usize) -> &Member {
        &self.list[i]
    }
}

impl IndexMut<usize> for Members {
    fn index_mut(&mut self, i: usize) -> &mut Member {
        let f = &mut self.filed[i];
        if !f.dirty && !self.rebuild {
            f.dirty = true;
            self.dirty.push(i);
        }
        &mut self.list[i]
    }
}
