//! Health verdicts: the check states (`crate::node::checks`) and what
//! they do to each instance's priority and faults (`crate::node::faults`).

use super::*;

impl Daemon {
    pub async fn on_health(&mut self, ev: Event) {
        match ev {
            Event::Stub(s) => self.stub = Some(s),
            Event::Verdict(Verdict {
                check,
                healthy,
                detail,
            }) => {
                let now = self.now();
                self.checks.verdict(&check, healthy, detail.clone(), now);
                if healthy {
                    info!(check = check.as_str(); "check {check} passes: {detail}");
                } else {
                    warn!(check = check.as_str(); "check {check} fails: {detail}");
                }
                for i in 0..self.insts.len() {
                    self.follow_checks(i).await;
                }
                self.start_all().await;
                self.report_status();
            }
        }
    }

    /// The checks this instance tracks: the listed ones, or all.
    pub(super) fn tracked(&self, i: usize) -> Vec<String> {
        self.checks
            .tracked(self.insts[i].plan.decl.track_checks.as_deref())
    }

    /// Brings the instance's check faults and priority in line with the
    /// current verdicts, without running actions (used before start-up).
    pub(super) fn apply_checks(&mut self, i: usize) {
        let (faults, prio) = self
            .checks
            .effect(&self.tracked(i), self.insts[i].plan.priority);
        let now = self.now();
        let r = &mut self.insts[i];
        r.faults.set_checks(faults);
        r.core.handle(now, Input::Priority(prio));
    }

    /// The same for a running instance: the state machine hears the new
    /// priority and, when it changes, the fault.
    pub(super) async fn follow_checks(&mut self, i: usize) {
        let (faults, prio) = self
            .checks
            .effect(&self.tracked(i), self.insts[i].plan.priority);
        let now = self.now();
        let a = self.insts[i].core.handle(now, Input::Priority(prio));
        self.exec(i, a).await;
        if let Some(input) = self.insts[i].faults.set_checks(faults) {
            let a = self.insts[i].core.handle(now, input);
            self.exec(i, a).await;
        }
    }

    pub(super) async fn set_fault(&mut self, i: usize, src: FaultSource, why: Option<String>) {
        let now = self.now();
        let r = &mut self.insts[i];
        if let Some(input) = r.faults.set(src, why) {
            let a = r.core.handle(now, input);
            self.exec(i, a).await;
        }
    }
}
