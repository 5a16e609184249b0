//! The two daemons' setups (textbook, fast, fastest and the unicast pair
//! profiles) and the pair of nodes in the lab that runs them.

use crate::lab::{self, Lab, ms, node_v4, wait_for};
use crate::scenarios::poll;
use crate::{VIP, vip};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

// ------------------------------------------------------------ the setups

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Daemon {
    NginxHa,
    Keepalived,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Profile {
    /// 1 s adverts, VRRPv2 for keepalived (the common recipe).
    Textbook,
    /// 100 ms adverts.
    Fast,
    /// 10 ms adverts, keepalived with `vrrp_track_process` only.
    Fastest,
    /// nginx-ha's default unicast pair: `unicastPeers` with the two nodes
    /// and nothing else set (VRRPv3, 1 s adverts, `fastTakeover: auto`,
    /// which is on with one peer); keepalived as a unicast pair
    /// (`unicast_src_ip`/`unicast_peer`) with `vrrp_track_process`.
    Pair,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::Textbook,
        Profile::Fast,
        Profile::Fastest,
        Profile::Pair,
    ];

    pub fn advert(self) -> Duration {
        match self {
            Profile::Textbook | Profile::Pair => ms(1000),
            Profile::Fast => ms(100),
            Profile::Fastest => ms(10),
        }
    }
    /// RFC 5798 §6.1 Skew_Time of the backup (priority 100).
    pub fn skew(self) -> Duration {
        self.advert() * (256 - 100) / 256
    }
    pub fn master_down(self) -> Duration {
        self.advert() * 3 + self.skew()
    }
    pub fn name(self) -> &'static str {
        match self {
            Profile::Textbook => "textbook",
            Profile::Fast => "fast",
            Profile::Fastest => "fastest",
            Profile::Pair => "pair",
        }
    }
    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// How keepalived watches nginx.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KaCheck {
    /// `vrrp_script` running curl against stub_status every 1 s.
    Script,
    /// `vrrp_track_process` on the node's nginx (netlink process events).
    TrackProcess,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Setup {
    pub daemon: Daemon,
    pub profile: Profile,
    pub ka: KaCheck,
}

impl Setup {
    pub fn label(&self) -> String {
        match self.daemon {
            Daemon::NginxHa => format!("nginx-ha {}", self.profile.name()),
            Daemon::Keepalived => format!(
                "keepalived {} ({})",
                self.profile.name(),
                match self.ka {
                    KaCheck::Script => "vrrp_script",
                    KaCheck::TrackProcess => "vrrp_track_process",
                }
            ),
        }
    }
    fn uses_track_process(&self) -> bool {
        self.daemon == Daemon::Keepalived && self.ka == KaCheck::TrackProcess
    }
}

/// The name (comm, at most 15 bytes) node i's nginx runs under when
/// keepalived tracks it with vrrp_track_process: unique to this run.
pub fn nginx_comm(i: usize) -> String {
    format!("ngx{}n{i}", std::process::id() % 100_000)
}

pub fn prio(i: usize) -> u8 {
    if i == 0 { 150 } else { 100 }
}

/// nginx-ha at its default check settings in every profile (issue 15:
/// interval 1s, timeout 500ms, rise 2, fall 2, weight 0); only the advert
/// interval differs between the multicast profiles. The pair profile sets
/// no more than a unicast pair needs (as `examples/demo.rs` does): version,
/// advert interval and fastTakeover are the defaults.
pub fn nginx_ha_decl(lab: &Lab, i: usize, p: Profile) -> Value {
    let web = match p {
        Profile::Pair => json!({
            "interface": "eth0",
            "virtualRouterId": 51,
            "virtualIps": [format!("{VIP}/24")],
            "unicastPeers": [node_v4(0).to_string(), node_v4(1).to_string()],
        }),
        _ => json!({
            "interface": "eth0",
            "virtualRouterId": 51,
            "version": 3,
            "virtualIps": [format!("{VIP}/24")],
            "advertInterval": match p {
                Profile::Fast => "100ms",
                Profile::Fastest => "10ms",
                Profile::Textbook | Profile::Pair => "1s",
            },
        }),
    };
    let inst = json!({ "web": web });
    let mut d = lab.declaration(i, prio(i), inst);
    // The lab's declaration sets test-speed checks; drop them.
    if let Some(o) = d["checks"]["nginx"].as_object_mut() {
        for k in ["interval", "timeout", "rise", "fall"] {
            o.remove(k);
        }
    }
    d
}

pub fn keepalived_conf(i: usize, s: Setup) -> String {
    let (version, advert) = match s.profile {
        Profile::Textbook => (2, "1"),
        Profile::Pair => (3, "1"),
        Profile::Fast => (3, "0.1"),
        Profile::Fastest => (3, "0.01"),
    };
    // Textbook: priority lowered below the backup's (150-60 = 90 < 100;
    // the recipe's -20 only works with 101/100). Fast: weight 0 = FAULT,
    // which leaves MASTER at once with a priority-0 advert.
    let weight = match s.profile {
        Profile::Textbook => -60,
        Profile::Fast | Profile::Fastest | Profile::Pair => 0,
    };
    // The peer by unicast, from this node's own address.
    let unicast = if s.profile == Profile::Pair {
        format!(
            "    unicast_src_ip {}\n    unicast_peer {{\n        {}\n    }}\n",
            node_v4(i),
            node_v4(1 - i)
        )
    } else {
        String::new()
    };
    let (tracker, track) = match s.ka {
        KaCheck::Script => (
            format!(
                "vrrp_script chk_nginx {{\n    script \"/usr/bin/curl -fsS -m 1 -o /dev/null http://127.0.0.1:8081/nginx_status\"\n    interval 1\n    weight {weight}\n}}\n"
            ),
            "    track_script {\n        chk_nginx\n    }\n".to_string(),
        ),
        // The lab's nodes share one PID namespace (and the machine runs
        // other nginx), so this node's nginx runs under a name of its own
        // (a symlink to /usr/sbin/nginx, see Pair::nginx_exe): matched by
        // its comm, as `process nginx` would be on a real machine.
        KaCheck::TrackProcess => (
            format!(
                "vrrp_track_process chk_nginx {{\n    process {}\n    quorum 1\n}}\n",
                nginx_comm(i)
            ),
            format!("    track_process {{\n        chk_nginx weight {weight}\n    }}\n"),
        ),
    };
    format!(
        "global_defs {{\n    router_id node{i}\n    vrrp_version {version}\n    script_user root\n}}\n\n\
         {tracker}\n\
         vrrp_instance web {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n\
         \x20   priority {}\n    advert_int {advert}\n\
         {unicast}\x20   virtual_ipaddress {{\n        {VIP}/24\n    }}\n{track}}}\n",
        prio(i)
    )
}

// ------------------------------------------------------------- the pair

pub struct Pair {
    pub lab: Lab,
    pub s: Setup,
    pub decls: Vec<Value>,
}

impl Pair {
    pub fn new(s: Setup) -> Pair {
        let lab = Lab::new(2, &daemon_bin());
        let decls = (0..2).map(|i| nginx_ha_decl(&lab, i, s.profile)).collect();
        Pair { lab, s, decls }
    }

    pub fn start(&mut self) -> Result<(), String> {
        for i in 0..2 {
            self.start_node(i);
        }
        self.settle("start")
    }

    pub fn start_node(&mut self, i: usize) {
        self.start_nginx(i);
        self.start_daemon(i);
    }

    pub fn start_nginx(&mut self, i: usize) {
        if self.s.uses_track_process() {
            let exe = self.lab.dir.path().join(nginx_comm(i));
            if !exe.exists() {
                std::os::unix::fs::symlink("/usr/sbin/nginx", &exe).expect("nginx symlink");
            }
            self.lab.start_nginx_exe(i, &exe);
        } else {
            self.lab.start_nginx(i);
        }
    }

    pub fn start_daemon(&mut self, i: usize) {
        match self.s.daemon {
            Daemon::NginxHa => {
                let d = self.decls[i].clone();
                self.lab.start_daemon(i, &d);
            }
            Daemon::Keepalived => {
                let conf = keepalived_conf(i, self.s);
                self.lab
                    .start_keepalived_opts(i, &conf, self.s.uses_track_process());
            }
        }
    }

    pub fn daemon_pid(&self, i: usize) -> Option<u32> {
        match self.s.daemon {
            Daemon::NginxHa => self.lab.daemon_pid(i),
            Daemon::Keepalived => self.lab.nodes[i].keepalived.as_ref().map(|c| c.id()),
        }
    }

    /// SIGTERM to node i's VRRP daemon, not waiting for it.
    pub fn sigterm_daemon(&mut self, i: usize) {
        if let Some(p) = self.daemon_pid(i) {
            // SAFETY: kill(2) on a daemon this lab started.
            unsafe { libc::kill(p as i32, libc::SIGTERM) };
        }
    }

    pub fn reap_daemon(&mut self, i: usize) {
        match self.s.daemon {
            Daemon::NginxHa => {
                self.lab.reap_daemon(i);
            }
            Daemon::Keepalived => self.lab.stop_keepalived(i),
        }
    }

    /// Back to the start: node0 master and serving, node1 backup, steady.
    pub fn settle(&self, what: &str) -> Result<(), String> {
        wait_for(Duration::from_secs(30), || {
            (self.lab.holders(vip()) == vec![0]).then_some(())
        })
        .ok_or_else(|| format!("{what}: holders {:?}", self.lab.holders(vip())))?;
        let (_, _) = poll(
            &self.lab,
            Instant::now(),
            "node0\n",
            Duration::from_secs(10),
        )
        .ok_or_else(|| format!("{what}: client never got node0"))?;
        // A few adverts so the backup has heard the master.
        std::thread::sleep(self.s.profile.advert() * 3);
        if self.lab.holders(vip()) != vec![0] {
            return Err(format!(
                "{what}: unstable, holders {:?}",
                self.lab.holders(vip())
            ));
        }
        Ok(())
    }

    pub fn log(&self, i: usize) -> String {
        match self.s.daemon {
            Daemon::NginxHa => self.lab.daemon_log(i),
            Daemon::Keepalived => self.lab.keepalived_log(i),
        }
    }
}

pub fn count_transitions(d: Daemon, log: &str) -> usize {
    match d {
        Daemon::NginxHa => log
            .lines()
            .filter(|l| l.contains("instance ") && l.contains(" -> ") && l.contains("(priority"))
            .count(),
        Daemon::Keepalived => log
            .lines()
            .filter(|l| {
                (l.contains("Entering ") && l.contains(" STATE"))
                    || l.contains("entering FAULT state")
            })
            .count(),
    }
}

pub fn daemon_bin() -> PathBuf {
    lab::daemon_next_to_examples()
}
