//! The `nginx` part of the declaration: upstreams, sites and the status page
//! that `render-nginx` turns into an http-level nginx config.

use super::Problems;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Nginx {
    #[serde(default)]
    pub upstreams: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub sites: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_page: Option<serde_json::Value>,
}

pub fn validate(_p: &mut Problems, _n: &Nginx) {}
