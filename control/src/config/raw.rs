//! The YAML document as written, before validation.
//!
//! Every value that a rule may reject is `Spanned` so the error can point at
//! it. Numbers are read as `i64` and range-checked in `validate`, which gives
//! one "must be in a..=b" message for every out-of-range value (negative
//! included). Names (protocol, scheduler, flags, forward) are strings for the
//! same reason: the messages and the ipvsadm hints are ours.

use serde::Deserialize;
use serde_saphyr::Spanned;

pub(super) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub eal: Option<S<RawEal>>,
    pub workers: S<RawWorkers>,
    pub ports: S<Vec<S<RawPort>>>,
    #[serde(default)]
    pub mbufs: Option<S<i64>>,
    #[serde(default)]
    pub addresses: Option<S<Vec<S<RawAddress>>>>,
    #[serde(default)]
    pub gateway: Option<S<RawGateway>>,
    #[serde(default)]
    pub neighbors: Option<S<Vec<S<RawNeighbor>>>>,
    #[serde(default)]
    pub services: Option<S<Vec<S<RawService>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEal {
    #[serde(default)]
    pub args: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub main_core: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkers {
    pub cores: S<Vec<S<i64>>>,
    #[serde(default)]
    pub burst: Option<S<i64>>,
    #[serde(default)]
    pub idle_sleep_us: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub name: S<String>,
    pub device: S<String>,
    #[serde(default)]
    pub rx_desc: Option<S<i64>>,
    #[serde(default)]
    pub tx_desc: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAddress {
    pub port: S<String>,
    pub address: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub port: S<String>,
    pub address: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbor {
    pub port: S<String>,
    pub address: S<String>,
    pub mac: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    #[serde(default)]
    pub name: Option<S<String>>,
    pub vip: S<String>,
    pub port: S<i64>,
    pub protocol: S<String>,
    pub scheduler: S<String>,
    #[serde(default)]
    pub sched_flags: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub mh_table_size: Option<S<i64>>,
    pub forward: S<String>,
    #[serde(default)]
    pub reals: Option<S<Vec<S<RawReal>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReal {
    pub address: S<String>,
    #[serde(default)]
    pub port: Option<S<i64>>,
    #[serde(default)]
    pub weight: Option<S<i64>>,
    #[serde(default)]
    pub forward: Option<S<String>>,
    #[serde(default)]
    pub upper_threshold: Option<S<i64>>,
    #[serde(default)]
    pub lower_threshold: Option<S<i64>>,
}
