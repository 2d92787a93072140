//! A container's `memory_limit`: OpenAI's four tiers, each a sandbox memory limit.

use std::fmt;
use std::str::FromStr;

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemoryLimit {
    G1,
    G4,
    G16,
    G64,
}

const TIERS: [(MemoryLimit, &str); 4] = [
    (MemoryLimit::G1, "1g"),
    (MemoryLimit::G4, "4g"),
    (MemoryLimit::G16, "16g"),
    (MemoryLimit::G64, "64g"),
];

impl MemoryLimit {
    /// The sandbox memory limit in MiB.
    pub fn mib(self) -> u64 {
        match self {
            MemoryLimit::G1 => 1024,
            MemoryLimit::G4 => 4 * 1024,
            MemoryLimit::G16 => 16 * 1024,
            MemoryLimit::G64 => 64 * 1024,
        }
    }

    pub fn as_str(self) -> &'static str {
        TIERS
            .iter()
            .find(|(tier, _)| *tier == self)
            .map(|(_, name)| *name)
            .unwrap_or("1g")
    }

    /// The request's `memory_limit` (default `1g`), refused when unknown or above `cap`.
    pub fn parse_within(param: &str, raw: Option<&str>, cap: MemoryLimit) -> ApiResult<Self> {
        let Some(raw) = raw else {
            return Ok(MemoryLimit::G1);
        };
        let limit: MemoryLimit = raw.parse().map_err(|_| {
            ApiError::invalid_code(
                param.to_string(),
                "invalid_value",
                format!(
                    "Invalid value: '{raw}'. Supported values are: '1g', '4g', '16g', and '64g'."
                ),
            )
        })?;
        if limit > cap {
            return Err(ApiError::invalid_code(
                param.to_string(),
                "invalid_value",
                format!(
                    "Invalid '{param}': '{raw}' is above the largest memory limit this server \
                     allows, '{cap}'."
                ),
            ));
        }
        Ok(limit)
    }
}

impl FromStr for MemoryLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TIERS
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
            .map(|(tier, _)| *tier)
            .ok_or_else(|| format!("'{s}' is not one of 1g, 4g, 16g, 64g"))
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_one_gigabyte_and_tiers_above_the_cap_are_refused() {
        let cap = MemoryLimit::G4;
        assert_eq!(
            MemoryLimit::parse_within("m", None, cap).unwrap(),
            MemoryLimit::G1
        );
        assert_eq!(
            MemoryLimit::parse_within("m", Some("4g"), cap)
                .unwrap()
                .mib(),
            4096
        );
        let above = MemoryLimit::parse_within("m", Some("16g"), cap).unwrap_err();
        assert!(above.to_string().contains("16g"), "{above}");
        assert!(MemoryLimit::parse_within("m", Some("2g"), cap).is_err());
    }
}
