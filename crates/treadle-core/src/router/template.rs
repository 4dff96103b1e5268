//! Parsing route templates into segments.

use super::MAX_PARAMS;
use crate::error::TemplateProblem;

/// One `/`-separated piece of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment<'t> {
    /// Matches exactly this text.
    Static(&'t str),
    /// Matches any non-empty segment and captures it under this name.
    Param(&'t str),
}

/// Splits `template` into segments, checking every template rule.
///
/// `/` is the root and has no segments.
pub(super) fn parse(template: &str) -> Result<Vec<Segment<'_>>, TemplateProblem> {
    let rest = template
        .strip_prefix('/')
        .ok_or(TemplateProblem::MissingLeadingSlash)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for raw in rest.split('/') {
        let segment = parse_segment(raw)?;
        if let Segment::Param(name) = segment {
            if names.contains(&name) {
                return Err(TemplateProblem::DuplicateParamName);
            }
            if names.len() == MAX_PARAMS {
                return Err(TemplateProblem::TooManyParams);
            }
            names.push(name);
        }
        segments.push(segment);
    }
    Ok(segments)
}

fn parse_segment(raw: &str) -> Result<Segment<'_>, TemplateProblem> {
    if raw.is_empty() {
        return Err(TemplateProblem::EmptySegment);
    }
    let Some(name) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return if raw.contains(['{', '}']) {
            Err(TemplateProblem::StrayBrace)
        } else {
            Ok(Segment::Static(raw))
        };
    };
    if name.contains(['{', '}']) {
        return Err(TemplateProblem::StrayBrace);
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(TemplateProblem::InvalidParamName);
    }
    Ok(Segment::Param(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::{Param, Static};

    #[test]
    fn root_has_no_segments() {
        assert_eq!(parse("/"), Ok(vec![]));
    }

    #[test]
    fn statics_and_params() {
        assert_eq!(
            parse("/v1/users/{id}/unlock"),
            Ok(vec![
                Static("v1"),
                Static("users"),
                Param("id"),
                Static("unlock")
            ])
        );
    }

    #[test]
    fn rejects_bad_templates() {
        let cases = [
            ("", TemplateProblem::MissingLeadingSlash),
            ("v1/users", TemplateProblem::MissingLeadingSlash),
            ("//", TemplateProblem::EmptySegment),
            ("/users/", TemplateProblem::EmptySegment),
            ("/a//b", TemplateProblem::EmptySegment),
            ("/users/{id", TemplateProblem::StrayBrace),
            ("/users/id}", TemplateProblem::StrayBrace),
            ("/users/x{id}", TemplateProblem::StrayBrace),
            ("/users/{{id}}", TemplateProblem::StrayBrace),
            ("/users/{}", TemplateProblem::InvalidParamName),
            ("/users/{user-id}", TemplateProblem::InvalidParamName),
            ("/a/{id}/b/{id}", TemplateProblem::DuplicateParamName),
        ];
        for (template, problem) in cases {
            assert_eq!(parse(template), Err(problem), "{template}");
        }
    }

    #[test]
    fn caps_parameter_count() {
        let at_cap: String = (0..MAX_PARAMS).map(|i| format!("/{{p{i}}}")).collect();
        assert_eq!(parse(&at_cap).map(|s| s.len()), Ok(MAX_PARAMS));
        let over = format!("{at_cap}/{{extra}}");
        assert_eq!(parse(&over), Err(TemplateProblem::TooManyParams));
    }
}
