//! The declaration's JSON Schema, derived from the Rust types (`schemars`),
//! printed by `nginx-ha schema`. It is the one description of what the
//! daemon accepts: the NixOS module builds its option types from the
//! committed copy (`nixos-module/declaration.schema.json`), and CI fails
//! when that copy is not what this prints.
//!
//! Strings the daemon parses further carry a `format` from the list below,
//! which the module maps onto an option type with the same syntax check.
//! Semantic rules (one family per instance, timeout ≤ interval, ...) stay
//! in `validate`; the module runs `check-config` on the generated file.

use schemars::generate::SchemaSettings;

/// `"100ms"`, `"1.5s"`: see `duration::parse_duration`.
pub const DURATION: &str = "duration";
/// `"192.0.2.10/24"`.
pub const IP_PREFIX: &str = "ip-prefix";
/// `"/run/x"`: absolute, no `..`, no control characters.
pub const ABSOLUTE_PATH: &str = "absolute-path";
/// A Linux interface name.
pub const INTERFACE_NAME: &str = "interface-name";
/// Letters, digits, `-`, `_`; 1..=64.
pub const NAME: &str = "name";
/// `IP:PORT`, IPv6 in brackets.
pub const SOCKET_ADDRESS: &str = "socket-address";

/// The schema as JSON, every subschema inlined (the declaration has no
/// recursive types), so a consumer needs no `$ref` resolution.
pub fn declaration_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    generator
        .into_root_schema_for::<super::Declaration>()
        .to_value()
}
