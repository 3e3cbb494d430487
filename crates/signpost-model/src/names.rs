use crate::ValidationError;

/// Longest destination, fragment or certificate name.
pub const MAX_NAME_LEN: usize = 200;

/// Destination and fragment names: `^[A-Za-z0-9_-]{1,200}$` (SAP's editor rule).
pub fn validate_entity_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!("is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ValidationError::new(
            field,
            "must contain only alphanumeric characters, underscores and dashes",
        ));
    }
    Ok(())
}

/// Certificate names: 1 to 200 characters, no `/`, `\` or control characters (they are file
/// names such as `workflow (new).pem`).
pub fn validate_certificate_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!("is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(ValidationError::new(
            field,
            "must not contain '/', '\\' or control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names() {
        assert!(validate_entity_name("Name", "my-dest_1").is_ok());
        assert!(validate_entity_name("Name", "").is_err());
        assert!(validate_entity_name("Name", "a b").is_err());
        assert!(validate_entity_name("Name", "ä").is_err());
        assert!(validate_entity_name("Name", &"a".repeat(200)).is_ok());
        let err = validate_entity_name("Name", &"a".repeat(201)).unwrap_err();
        assert_eq!(err.to_string(), "Name is longer than 200 characters");
    }

    #[test]
    fn certificate_names() {
        assert!(validate_certificate_name("Name", "workflow (new).pem").is_ok());
        assert!(validate_certificate_name("Name", "our team's app.pem").is_ok());
        assert!(validate_certificate_name("Name", "a/b.pem").is_err());
        assert!(validate_certificate_name("Name", "a\nb").is_err());
    }
}
