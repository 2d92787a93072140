//! Filters on a store file's `attributes` (OpenAI's comparison and compound filters), applied
//! before anything is scored, so a selective filter still fills a page.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::objects::vector_store::{json_type, Attributes};

/// A filter on file attributes: a comparison of one attribute with a value, or an `and` /
/// `or` of filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(rename = "type")]
    op: FilterOp,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    filters: Option<Vec<Filter>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    And,
    Or,
}

impl Filter {
    fn is_compound(&self) -> bool {
        matches!(self.op, FilterOp::And | FilterOp::Or)
    }

    /// Checks the shape each `type` needs.
    pub fn validate(&self, param: &str) -> ApiResult<()> {
        let missing = |field: &str| {
            let p = format!("{param}.{field}");
            ApiError::invalid_code(
                p.clone(),
                "missing_required_parameter",
                format!("Missing required parameter: '{p}'."),
            )
        };
        let unknown = |field: &str| {
            let p = format!("{param}.{field}");
            ApiError::invalid_code(
                p.clone(),
                "unknown_parameter",
                format!("Unknown parameter: '{p}'."),
            )
        };
        if self.is_compound() {
            if self.key.is_some() {
                return Err(unknown("key"));
            }
            if self.value.is_some() {
                return Err(unknown("value"));
            }
            let filters = self.filters.as_ref().ok_or_else(|| missing("filters"))?;
            for (i, f) in filters.iter().enumerate() {
                f.validate(&format!("{param}.filters[{i}]"))?;
            }
            return Ok(());
        }
        if self.filters.is_some() {
            return Err(unknown("filters"));
        }
        self.key.as_ref().ok_or_else(|| missing("key"))?;
        let value = self.value.as_ref().ok_or_else(|| missing("value"))?;
        let p = format!("{param}.value");
        let wrong = |expected: &str, got: &Value| {
            ApiError::invalid_code(
                p.clone(),
                "invalid_type",
                format!(
                    "Invalid type for '{p}': expected {expected}, but got {} instead.",
                    json_type(got)
                ),
            )
        };
        match (self.op, value) {
            (FilterOp::In | FilterOp::Nin, Value::Array(items)) => {
                match items.iter().find(|v| !(v.is_string() || v.is_number())) {
                    Some(bad) => Err(wrong("an array of strings or numbers", bad)),
                    None => Ok(()),
                }
            }
            (FilterOp::In | FilterOp::Nin, other) => Err(wrong("an array", other)),
            (_, Value::String(_) | Value::Number(_) | Value::Bool(_)) => Ok(()),
            (_, other) => Err(wrong("a string, a number or a boolean", other)),
        }
    }

    /// Whether a file with these attributes passes. A comparison with an attribute the file
    /// does not have never passes.
    pub fn matches(&self, attributes: &Attributes) -> bool {
        let children = || self.filters.iter().flatten();
        match self.op {
            FilterOp::And => return children().all(|f| f.matches(attributes)),
            FilterOp::Or => return children().any(|f| f.matches(attributes)),
            _ => {}
        }
        let (Some(key), Some(value)) = (&self.key, &self.value) else {
            return false;
        };
        let Some(attr) = attributes.get(key) else {
            return false;
        };
        let ordering = compare(attr, value);
        match self.op {
            FilterOp::Eq => same(attr, value),
            FilterOp::Ne => !same(attr, value),
            FilterOp::Gt => ordering.is_some_and(|o| o.is_gt()),
            FilterOp::Gte => ordering.is_some_and(|o| o.is_ge()),
            FilterOp::Lt => ordering.is_some_and(|o| o.is_lt()),
            FilterOp::Lte => ordering.is_some_and(|o| o.is_le()),
            FilterOp::In => value
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| same(attr, v))),
            FilterOp::Nin => value
                .as_array()
                .is_some_and(|vs| !vs.iter().any(|v| same(attr, v))),
            FilterOp::And | FilterOp::Or => unreachable!("handled above"),
        }
    }
}

/// Equality with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Numbers order by value and strings by their characters; other pairs do not order.
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: Value) -> Filter {
        let f: Filter = serde_json::from_value(json).unwrap();
        f.validate("filters").unwrap();
        f
    }

    fn attrs(json: Value) -> Attributes {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn comparisons_and_compounds_apply_to_attributes() {
        let a = attrs(serde_json::json!({"team": "red", "year": 2024, "draft": false}));
        assert!(
            filter(serde_json::json!({"type": "eq", "key": "team", "value": "red"})).matches(&a)
        );
        assert!(
            !filter(serde_json::json!({"type": "ne", "key": "team", "value": "red"})).matches(&a)
        );
        assert!(
            filter(serde_json::json!({"type": "gte", "key": "year", "value": 2024.0})).matches(&a)
        );
        assert!(
            !filter(serde_json::json!({"type": "lt", "key": "year", "value": 2000})).matches(&a)
        );
        assert!(
            filter(serde_json::json!({"type": "in", "key": "team", "value": ["blue", "red"]}))
                .matches(&a)
        );
        assert!(
            filter(serde_json::json!({"type": "nin", "key": "year", "value": [1, 2]})).matches(&a)
        );
        assert!(
            !filter(serde_json::json!({"type": "eq", "key": "missing", "value": 1})).matches(&a)
        );
        let both = filter(serde_json::json!({"type": "and", "filters": [
            {"type": "eq", "key": "draft", "value": false},
            {"type": "or", "filters": [
                {"type": "eq", "key": "team", "value": "blue"},
                {"type": "gt", "key": "year", "value": 2020}]}]}));
        assert!(both.matches(&a));
    }

    #[test]
    fn malformed_filters_name_the_field() {
        let param = |json: Value| match serde_json::from_value::<Filter>(json)
            .unwrap()
            .validate("filters")
        {
            Err(ApiError::InvalidRequest { param, .. }) => param.unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            param(serde_json::json!({"type": "eq", "key": "k"})),
            "filters.value"
        );
        assert_eq!(param(serde_json::json!({"type": "and"})), "filters.filters");
        assert_eq!(
            param(
                serde_json::json!({"type": "or", "filters": [{"type": "in", "key": "k", "value": 1}]})
            ),
            "filters.filters[0].value"
        );
    }
}
