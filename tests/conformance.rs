//! Whole-node conformance fixtures, replayed without root or a network:
//! `tests/conformance/<case>/case.json` says which declaration the node
//! runs and what happens to it (events at given times; timers fire in
//! between as the node asks), with human-written expectations (states,
//! who holds the VIPs, where the clients' ARP entries point);
//! `expected.json` next to it is the full transcript of events and
//! commands, so any change of behaviour shows as a diff. Regenerate the
//! transcripts after an intended change with
//! `NGINX_HA_BLESS=1 cargo test --test conformance` and read the diff.

use nginx_ha::config::{self, duration::parse_duration};
use nginx_ha::node::Node;
use nginx_ha::node::event::{Command, Event};
use nginx_ha::node::plan::{LinkInfo, Passwords, Plan, plans};
use nginx_ha::vrrp::packet::{Advert, Auth, ChecksumStyle, Version};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOT: &str = "tests/conformance";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    /// A file in tests/conformance/declarations/, without `.json`.
    declaration: String,
    /// JSON merge patch applied to it.
    #[serde(default)]
    patch: Value,
    #[serde(default)]
    maintenance: bool,
    /// Addresses per interface; default: eth1 with 192.0.2.11/24,
    /// 2001:db8::11/64 and fe80::11/64.
    #[serde(default)]
    addresses: BTreeMap<String, Vec<(IpAddr, u8)>>,
    /// Adding a VIP fails (no CAP_NET_ADMIN), as the daemon would report.
    #[serde(default)]
    vip_add_fails: bool,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    at: String,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    expect: Option<Expect>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Instance name to state (MASTER, BACKUP, FAULT, INIT).
    #[serde(default)]
    state: BTreeMap<String, String>,
    /// Instance name to whether this node holds its VIPs.
    #[serde(default)]
    holds_vips: BTreeMap<String, bool>,
    /// Instance name to whether the clients' ARP/ND entries point here
    /// (announced while master, not withdrawn since).
    #[serde(default)]
    clients_here: BTreeMap<String, bool>,
    /// Instance name to the priority of the last advert sent.
    #[serde(default)]
    last_advert_priority: BTreeMap<String, u8>,
    /// Whether the node's last anycast wish is to announce.
    #[serde(default)]
    announced: Option<bool>,
}

/// What the outside world knows of the node, from its commands.
#[derive(Default)]
struct World {
    state: BTreeMap<String, String>,
    holds: BTreeMap<String, bool>,
    clients_here: BTreeMap<String, bool>,
    last_priority: BTreeMap<String, u8>,
    announced: Option<bool>,
}

struct Run {
    node: Node,
    plans: Vec<Plan>,
    passwords: Passwords,
    links: BTreeMap<String, LinkInfo>,
    addresses: BTreeMap<String, Vec<(IpAddr, u8)>>,
    vip_add_fails: bool,
    world: World,
    transcript: Vec<Value>,
    decl: Value,
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (_, Value::Null) => {}
        (b, p) => *b = p.clone(),
    }
}

fn at(s: &str) -> Duration {
    parse_duration(s).unwrap_or_else(|e| panic!("bad time {s:?}: {e}"))
}

fn show(d: Duration) -> String {
    format!("{}ms", d.as_micros() as f64 / 1000.0)
}

impl Run {
    fn new(case: &Case) -> Run {
        let path = Path::new(ROOT)
            .join("declarations")
            .join(format!("{}.json", case.declaration));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut decl: Value = serde_json::from_str(&text).expect("declaration JSON");
        merge(&mut decl, &case.patch);
        let parsed = config::parse(decl.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("declaration refused: {:?}", e.lines()));
        let mut addresses = case.addresses.clone();
        if addresses.is_empty() {
            addresses.insert(
                "eth1".into(),
                vec![
                    ("192.0.2.11".parse().expect("ip"), 24),
                    ("2001:db8::11".parse().expect("ip"), 64),
                    ("fe80::11".parse().expect("ip"), 64),
                ],
            );
        }
        let mut links = BTreeMap::new();
        for (n, (name, _)) in addresses.iter().enumerate() {
            let index = 2 + n as u32;
            links.insert(
                name.clone(),
                LinkInfo {
                    index,
                    name: name.clone(),
                    up: true,
                    mac: Some([2, 0, 0, 0, 0, index as u8]),
                },
            );
        }
        // Passwords are given inline (the file path is only a name here).
        let passwords: Passwords = parsed
            .instances
            .iter()
            .filter(|(_, i)| i.auth_password_file.is_some())
            .map(|(n, _)| (n.clone(), Auth::pass(b"secret").expect("8 bytes")))
            .collect();
        let plan_links: Vec<LinkInfo> = parsed
            .instances
            .values()
            .map(|i| {
                links
                    .get(&i.interface)
                    .cloned()
                    .expect("interface in addresses")
            })
            .collect();
        let plans = plans(&parsed, &passwords, &plan_links).expect("plans");
        let weights = weights(&parsed);
        Run {
            node: Node::new(weights, case.maintenance),
            plans,
            passwords,
            links,
            addresses,
            vip_add_fails: case.vip_add_fails,
            world: World::default(),
            transcript: Vec::new(),
            decl,
        }
    }

    fn feed(&mut self, now: Duration, ev: Event, label: Value) {
        let cmds = self.node.handle(now, ev);
        let mut shown = Vec::new();
        let mut queue: std::collections::VecDeque<Command> = cmds.into();
        while let Some(c) = queue.pop_front() {
            shown.push(view(&c));
            match &c {
                Command::Transition { instance, to, .. } => {
                    self.world
                        .state
                        .insert(instance.clone(), to.as_str().to_string());
                    if to.as_str() != "MASTER" {
                        self.world.clients_here.insert(instance.clone(), false);
                    }
                }
                Command::AddVips {
                    instance, restore, ..
                } => {
                    if self.vip_add_fails && !restore {
                        // As the daemon does: the rest of the instance's
                        // batch is void, the node hears of the failure.
                        queue.retain(|c| {
                            c.instance() != Some(instance.as_str())
                                || matches!(c, Command::Transition { .. })
                        });
                        let ev = Event::VipAddFailed {
                            instance: instance.clone(),
                            error: "cannot add VIP: Operation not permitted".into(),
                        };
                        queue.extend(self.node.handle(now, ev));
                    } else {
                        self.world.holds.insert(instance.clone(), true);
                    }
                }
                Command::RemoveVips { instance, .. } => {
                    self.world.holds.insert(instance.clone(), false);
                }
                Command::Announce { instance, .. } => {
                    self.world.clients_here.insert(instance.clone(), true);
                }
                Command::Anycast { announce, .. } => self.world.announced = Some(*announce),
                Command::Send {
                    instance, bytes, ..
                } => {
                    if let Some(p) = bytes.get(2) {
                        self.world.last_priority.insert(instance.to_string(), *p);
                    }
                }
                _ => {}
            }
        }
        self.transcript
            .push(json!({ "at": show(now), "event": label, "commands": shown }));
    }

    /// Fires the node's timers up to and including `until`.
    fn timers_until(&mut self, until: Duration) {
        let mut guard = 0;
        while let Some(t) = self.node.poll_timeout() {
            if t > until {
                break;
            }
            guard += 1;
            assert!(guard < 100_000, "the node keeps asking for timers");
            self.feed(t, Event::Timer, json!("timer"));
        }
    }

    fn event(&mut self, now: Duration, v: &Value) {
        match v {
            Value::String(s) if s == "start" => {
                for p in self.plans.clone() {
                    let on_link = self
                        .addresses
                        .get(&p.link.name)
                        .cloned()
                        .unwrap_or_default();
                    let ev = Event::Add {
                        plan: Box::new(p.clone()),
                        on_link,
                    };
                    self.feed(now, ev, json!({ "add": p.name }));
                }
                let parsed = config::parse(self.decl.to_string().as_bytes()).expect("declaration");
                if let Some(a) = parsed.anycast {
                    let ev = Event::Anycast(Some(Box::new(a)));
                    self.feed(now, ev, json!("anycast"));
                }
                self.feed(now, Event::Start, json!("start"));
            }
            Value::Object(m) if m.contains_key("advertFrom") => {
                let a = &m["advertFrom"];
                let ev = self.advert(a);
                self.feed(now, ev, v.clone());
            }
            Value::Object(m) if m.contains_key("reload") => {
                let ev = self.reload(&m["reload"]);
                self.feed(now, ev, v.clone());
            }
            other => {
                let ev: Event = serde_json::from_value(other.clone())
                    .unwrap_or_else(|e| panic!("event {other}: {e}"));
                self.feed(now, ev, other.clone());
            }
        }
    }

    /// `{"advertFrom": {"instance": "web", "src": "192.0.2.12", "priority": 100}}`:
    /// an advert a peer of that instance would send (optional: "interval",
    /// "version", "vrid", "auth": "other").
    fn advert(&self, a: &Value) -> Event {
        let name = a["instance"].as_str().expect("advertFrom.instance");
        let plan = self
            .plans
            .iter()
            .find(|p| p.name == name)
            .expect("instance");
        let cfg = plan.core_config(None);
        let src: IpAddr = a["src"]
            .as_str()
            .expect("src")
            .parse()
            .expect("src address");
        let interval_cs = a
            .get("interval")
            .and_then(Value::as_str)
            .map_or(cfg.advert_interval_cs, |s| (at(s).as_millis() / 10) as u16);
        let version = match a.get("version").and_then(Value::as_u64) {
            Some(2) => Version::V2,
            Some(_) => Version::V3,
            None => cfg.version,
        };
        let auth = match a.get("auth").and_then(Value::as_str) {
            Some("other") => Auth::pass(b"other").expect("auth"),
            _ => self.passwords.get(name).copied().unwrap_or(Auth::None),
        };
        Event::Advert {
            ifindex: plan.link.index,
            v4: plan.v4,
            src,
            advert: Advert {
                version,
                vrid: a
                    .get("vrid")
                    .and_then(Value::as_u64)
                    .map_or(cfg.vrid, |v| v as u8),
                priority: a["priority"].as_u64().expect("priority") as u8,
                interval_cs,
                addrs: cfg.vips.clone(),
                auth,
            },
            checksum: ChecksumStyle::Rfc,
        }
    }

    /// `{"reload": {"patch": {...}}}`: the declaration patched again.
    fn reload(&mut self, r: &Value) -> Event {
        let mut decl = self.decl.clone();
        merge(&mut decl, &r["patch"]);
        let parsed = config::parse(decl.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("reloaded declaration refused: {:?}", e.lines()));
        let old = config::parse(self.decl.to_string().as_bytes()).expect("old declaration");
        let plan_links: Vec<LinkInfo> = parsed
            .instances
            .values()
            .map(|i| self.links.get(&i.interface).cloned().expect("interface"))
            .collect();
        let new_plans = plans(&parsed, &self.passwords, &plan_links).expect("plans");
        let restarted: Vec<String> = parsed
            .checks
            .extra
            .iter()
            .filter(|(n, c)| old.checks.extra.get(*n) != Some(*c))
            .map(|(n, _)| n.clone())
            .chain((parsed.checks.nginx != old.checks.nginx).then(|| "nginx".to_string()))
            .collect();
        let on_link = self
            .links
            .values()
            .map(|l| {
                (
                    l.index,
                    self.addresses.get(&l.name).cloned().unwrap_or_default(),
                )
            })
            .collect();
        self.decl = decl;
        self.plans = new_plans.clone();
        Event::Reload {
            plans: new_plans,
            weights: weights(&parsed),
            restarted,
            on_link,
        }
    }

    fn check(&self, case: &str, when: &str, e: &Expect) {
        let w = &self.world;
        for (i, s) in &e.state {
            let got = w.state.get(i).map_or("INIT", String::as_str);
            assert_eq!(got, s, "{case} at {when}: state of {i}");
        }
        for (i, h) in &e.holds_vips {
            assert_eq!(
                w.holds.get(i).copied().unwrap_or(false),
                *h,
                "{case} at {when}: VIPs of {i}"
            );
        }
        for (i, c) in &e.clients_here {
            assert_eq!(
                w.clients_here.get(i).copied().unwrap_or(false),
                *c,
                "{case} at {when}: clients of {i} point here"
            );
        }
        if let Some(a) = e.announced {
            assert_eq!(w.announced, Some(a), "{case} at {when}: anycast announced");
        }
        for (i, p) in &e.last_advert_priority {
            assert_eq!(
                w.last_priority.get(i),
                Some(p),
                "{case} at {when}: last advert of {i}"
            );
        }
    }
}

fn weights(d: &config::Declaration) -> BTreeMap<String, i64> {
    let mut w: BTreeMap<String, i64> = d
        .checks
        .extra
        .iter()
        .map(|(n, c)| (n.clone(), c.weight))
        .collect();
    if d.checks.nginx.enable {
        w.insert("nginx".into(), d.checks.nginx.weight);
    }
    w
}

/// A command as the transcript shows it: adverts by priority and
/// destination instead of bytes.
fn view(c: &Command) -> Value {
    match c {
        Command::Send {
            instance,
            dst,
            bytes,
            ..
        } => json!({ "send": { "instance": instance, "dst": dst, "priority": bytes.get(2) } }),
        other => serde_json::to_value(other).expect("commands serialize"),
    }
}

fn run_case(dir: &Path) -> Result<(), String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_string();
    let text =
        std::fs::read_to_string(dir.join("case.json")).map_err(|e| format!("{name}: {e}"))?;
    let case: Case = serde_json::from_str(&text).map_err(|e| format!("{name}: case.json: {e}"))?;
    assert!(!case.about.is_empty());
    let mut run = Run::new(&case);
    let mut last = Duration::ZERO;
    for step in &case.steps {
        let now = at(&step.at);
        assert!(now >= last, "{name}: steps out of order at {}", step.at);
        last = now;
        // Timers due before the event fire first; at the same instant the
        // event comes first, as a packet read before a wake-up would.
        if now > Duration::ZERO {
            run.timers_until(now - Duration::from_nanos(1));
        }
        if let Some(ev) = &step.event {
            run.event(now, ev);
        }
        run.timers_until(now);
        if let Some(e) = &step.expect {
            run.check(&name, &step.at, e);
        }
    }
    let transcript = Value::Array(run.transcript);
    let expected_path = dir.join("expected.json");
    let pretty = serde_json::to_string_pretty(&transcript).expect("JSON") + "\n";
    if std::env::var_os("NGINX_HA_BLESS").is_some() {
        std::fs::write(&expected_path, pretty).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path)
        .map_err(|e| format!("{name}: {e} (NGINX_HA_BLESS=1 writes it)"))?;
    if expected != pretty {
        let exp: Vec<&str> = expected.lines().collect();
        let got: Vec<&str> = pretty.lines().collect();
        let first = exp
            .iter()
            .zip(&got)
            .position(|(a, b)| a != b)
            .unwrap_or(exp.len().min(got.len()));
        return Err(format!(
            "{name}: the transcript differs from expected.json from line {}:\n  expected: {}\n  got:      {}",
            first + 1,
            exp.get(first).unwrap_or(&"<end>"),
            got.get(first).unwrap_or(&"<end>")
        ));
    }
    Ok(())
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("cases"))
        .expect("tests/conformance/cases")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").exists())
        .collect();
    v.sort();
    v
}

#[test]
fn every_conformance_case_replays() {
    let all = cases();
    assert!(all.len() >= 40, "only {} conformance cases", all.len());
    let failures: Vec<String> = all
        .iter()
        .filter_map(|d| match std::panic::catch_unwind(|| run_case(d)) {
            Ok(r) => r.err(),
            Err(p) => Some(format!(
                "{}: {}",
                d.display(),
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
