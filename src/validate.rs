//! Field rules shared by several request types, with OpenAI's error wording.

use std::collections::BTreeMap;

use crate::error::{ApiError, ApiResult};

pub type Metadata = BTreeMap<String, String>;

pub fn max_chars(param: &str, value: &str, max: usize) -> ApiResult<()> {
    let len = value.chars().count();
    if len > max {
        return Err(ApiError::invalid_code(
            param,
            "string_above_max_length",
            format!("Invalid '{param}': string too long. Expected a string with maximum length {max}, but got a string with length {len} instead."),
        ));
    }
    Ok(())
}

pub fn max_items<T>(param: &str, items: &[T], max: usize) -> ApiResult<()> {
    if items.len() > max {
        return Err(ApiError::invalid_code(
            param,
            "array_above_max_length",
            format!("Invalid '{param}': array too long. Expected an array with maximum length {max}, but got an array with length {} instead.", items.len()),
        ));
    }
    Ok(())
}

pub fn range(param: &str, value: f64, min: f64, max: f64) -> ApiResult<()> {
    if value < min {
        return Err(ApiError::invalid_code(
            param,
            "decimal_below_min_value",
            format!("Invalid '{param}': decimal below minimum value. Expected a value >= {min}, but got {value} instead."),
        ));
    }
    if value > max || value.is_nan() {
        return Err(ApiError::invalid_code(
            param,
            "decimal_above_max_value",
            format!("Invalid '{param}': decimal above maximum value. Expected a value <= {max}, but got {value} instead."),
        ));
    }
    Ok(())
}

/// The values of `reasoning_effort` (nullable) per the spec.
pub fn reasoning_effort(param: &str, value: Option<&str>) -> ApiResult<()> {
    const EFFORTS: [&str; 7] = ["none", "minimal", "low", "medium", "high", "xhigh", "max"];
    match value {
        Some(v) if !EFFORTS.contains(&v) => Err(ApiError::invalid_code(
            param,
            "invalid_value",
            format!("Invalid value: '{v}'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'."),
        )),
        _ => Ok(()),
    }
}

pub fn metadata(param: &str, metadata: &Metadata) -> ApiResult<()> {
    if metadata.len() > 16 {
        return Err(ApiError::invalid_code(
            param,
            "object_above_max_properties",
            format!("Invalid '{param}': too many properties. Expected an object with at most 16 properties, but got an object with {} properties instead.", metadata.len()),
        ));
    }
    for (key, value) in metadata {
        max_chars(&format!("{param}.{key}"), key, 64)?;
        max_chars(&format!("{param}.{key}"), value, 512)?;
    }
    Ok(())
}

pub fn non_empty(param: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() {
        return Err(ApiError::invalid_code(
            param,
            "empty_string",
            format!("Invalid '{param}': empty string. Expected a string with minimum length 1, but got an empty string instead."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(max_chars("name", &"é".repeat(256), 256).is_ok());
        assert!(max_chars("name", &"é".repeat(257), 256).is_err());
    }

    #[test]
    fn metadata_limits_apply_to_count_keys_and_values() {
        let ok: Metadata = (0..16).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(metadata("metadata", &ok).is_ok());
        let many: Metadata = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(metadata("metadata", &many).is_err());
        let long_key: Metadata = [("k".repeat(65), "v".to_string())].into();
        assert!(metadata("metadata", &long_key).is_err());
        let long_value: Metadata = [("k".to_string(), "v".repeat(513))].into();
        assert!(metadata("metadata", &long_value).is_err());
    }

    #[test]
    fn ranges_are_inclusive() {
        assert!(range("temperature", 2.0, 0.0, 2.0).is_ok());
        assert!(range("temperature", 2.01, 0.0, 2.0).is_err());
        assert!(range("top_p", -0.1, 0.0, 1.0).is_err());
    }
}
