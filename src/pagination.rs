//! List parameters (`limit`, `order`, `after`, `before`) and the list envelope.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Clone, Debug)]
pub struct ListParams {
    pub limit: usize,
    pub order: Order,
    pub after: Option<String>,
    pub before: Option<String>,
}

/// How a list endpoint pages: the `/files` list allows far larger pages and has no `before`.
#[derive(Clone, Copy)]
pub struct ListRules {
    pub default_limit: usize,
    pub max_limit: usize,
    pub allow_before: bool,
}

pub const OBJECT_LISTS: ListRules = ListRules {
    default_limit: 20,
    max_limit: 100,
    allow_before: true,
};

pub const FILE_LISTS: ListRules = ListRules {
    default_limit: 10_000,
    max_limit: 10_000,
    allow_before: false,
};

impl ListParams {
    pub fn parse(query: &HashMap<String, String>, rules: ListRules) -> ApiResult<Self> {
        let limit = match query.get("limit").map(String::as_str) {
            None | Some("") => rules.default_limit,
            Some(raw) => {
                let n: i64 = raw.parse().map_err(|_| {
                    ApiError::invalid_code(
                        "limit",
                        "invalid_type",
                        format!("Invalid 'limit': expected an integer, but got '{raw}' instead."),
                    )
                })?;
                if n < 1 {
                    return Err(ApiError::invalid_code(
                        "limit",
                        "integer_below_min_value",
                        format!("Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {n} instead."),
                    ));
                }
                if n > rules.max_limit as i64 {
                    return Err(ApiError::invalid_code(
                        "limit",
                        "integer_above_max_value",
                        format!("Invalid 'limit': integer above maximum value. Expected a value <= {}, but got {n} instead.", rules.max_limit),
                    ));
                }
                n as usize
            }
        };
        let order = match query.get("order").map(String::as_str) {
            None | Some("") | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(other) => {
                return Err(ApiError::invalid_code(
                    "order",
                    "invalid_value",
                    format!("Invalid value: '{other}'. Supported values are: 'asc' and 'desc'."),
                ))
            }
        };
        let cursor = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
        let before = if rules.allow_before {
            cursor("before")
        } else {
            None
        };
        Ok(Self {
            limit,
            order,
            after: cursor("after"),
            before,
        })
    }
}

impl ListParams {
    /// The parameters as one string, naming a page in the read cache.
    pub fn cache_key(&self) -> String {
        format!(
            "limit={}&order={:?}&after={}&before={}",
            self.limit,
            self.order,
            self.after.as_deref().unwrap_or(""),
            self.before.as_deref().unwrap_or("")
        )
    }
}

#[derive(Debug, Serialize)]
pub struct ListPage<T> {
    object: &'static str,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

impl<T> ListPage<T> {
    pub fn new(items: Vec<(String, T)>, has_more: bool) -> Self {
        let first_id = items.first().map(|(id, _)| id.clone());
        let last_id = items.last().map(|(id, _)| id.clone());
        Self {
            object: "list",
            data: items.into_iter().map(|(_, object)| object).collect(),
            first_id,
            last_id,
            has_more,
        }
    }
}

/// A page of items held in memory (oldest first), each with an `id`: ordered, after the
/// cursor, cut to the limit, as a list object.
pub fn page_of(mut items: Vec<serde_json::Value>, params: &ListParams) -> serde_json::Value {
    if params.order == Order::Desc {
        items.reverse();
    }
    if let Some(after) = &params.after {
        match items.iter().position(|i| i["id"] == after.as_str()) {
            Some(at) => {
                items.drain(..=at);
            }
            None => items.clear(),
        }
    }
    let has_more = items.len() > params.limit;
    items.truncate(params.limit);
    list_of(items, has_more)
}

/// A list object of `items`.
pub fn list_of(items: Vec<serde_json::Value>, has_more: bool) -> serde_json::Value {
    serde_json::json!({
        "object": "list",
        "first_id": items.first().map(|i| i["id"].clone()),
        "last_id": items.last().map(|i| i["id"].clone()),
        "data": items,
        "has_more": has_more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_twenty_newest_first() {
        let p = ListParams::parse(&q(&[]), OBJECT_LISTS).unwrap();
        assert_eq!((p.limit, p.order), (20, Order::Desc));
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        for bad in ["0", "101", "-1", "ten"] {
            assert!(
                ListParams::parse(&q(&[("limit", bad)]), OBJECT_LISTS).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            ListParams::parse(&q(&[("limit", "100")]), OBJECT_LISTS)
                .unwrap()
                .limit,
            100
        );
        assert_eq!(
            ListParams::parse(&q(&[("limit", "5000")]), FILE_LISTS)
                .unwrap()
                .limit,
            5000
        );
    }

    #[test]
    fn only_asc_and_desc_are_orders() {
        assert!(ListParams::parse(&q(&[("order", "sideways")]), OBJECT_LISTS).is_err());
        assert_eq!(
            ListParams::parse(&q(&[("order", "asc")]), OBJECT_LISTS)
                .unwrap()
                .order,
            Order::Asc
        );
    }
}
