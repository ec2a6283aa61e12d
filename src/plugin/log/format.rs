//! Log line formats: CoreDNS's replacer syntax parsed once into literal, label and metadata
//! parts.

/// A placeholder CoreDNS knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// `{type}`.
    Type,
    /// `{name}`.
    Name,
    /// `{class}`.
    Class,
    /// `{proto}`.
    Proto,
    /// `{size}`.
    Size,
    /// `{remote}`.
    Remote,
    /// `{port}`.
    Port,
    /// `{local}`.
    Local,
    /// `{>id}`.
    Id,
    /// `{>opcode}`.
    Opcode,
    /// `{>do}`.
    Do,
    /// `{>bufsize}`.
    Bufsize,
    /// `{rcode}`.
    Rcode,
    /// `{rsize}`.
    Rsize,
    /// `{duration}`.
    Duration,
    /// `{>rflags}`.
    Rflags,
}

impl Label {
    fn from_text(s: &str) -> Option<Label> {
        Some(match s {
            "{type}" => Label::Type,
            "{name}" => Label::Name,
            "{class}" => Label::Class,
            "{proto}" => Label::Proto,
            "{size}" => Label::Size,
            "{remote}" => Label::Remote,
            "{port}" => Label::Port,
            "{local}" => Label::Local,
            "{>id}" => Label::Id,
            "{>opcode}" => Label::Opcode,
            "{>do}" => Label::Do,
            "{>bufsize}" => Label::Bufsize,
            "{rcode}" => Label::Rcode,
            "{rsize}" => Label::Rsize,
            "{duration}" => Label::Duration,
            "{>rflags}" => Label::Rflags,
            _ => return None,
        })
    }
}

/// One segment of a format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is (unknown `{x}` placeholders stay literal, as in CoreDNS).
    Literal(String),
    /// A known placeholder.
    Label(Label),
    /// `{/key}`: a metadata value, `-` when unset.
    Metadata(String),
}

/// A parsed format.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Format {
    /// The segments in order.
    pub parts: Vec<Part>,
}

impl Format {
    /// Parses `s` the way CoreDNS's replacer does: find each `}`, back up to the nearest `{`
    /// before it; known labels and `{/metadata}` become placeholders, anything else is text.
    pub fn parse(s: &str) -> Format {
        let mut parts: Vec<Part> = Vec::new();
        let mut rest = s;
        while let Some(j) = rest.find('}') {
            let Some(i) = rest[..j].rfind('{') else {
                parts.push(Part::Literal(rest[..=j].to_string()));
                rest = &rest[j + 1..];
                continue;
            };
            let val = &rest[i..=j];
            if let Some(label) = Label::from_text(val) {
                if i > 0 {
                    parts.push(Part::Literal(rest[..i].to_string()));
                }
                parts.push(Part::Label(label));
            } else if let Some(key) = val.strip_prefix("{/") {
                if i > 0 {
                    parts.push(Part::Literal(rest[..i].to_string()));
                }
                parts.push(Part::Metadata(key[..key.len() - 1].to_string()));
            } else {
                parts.push(Part::Literal(rest[..=j].to_string()));
            }
            rest = &rest[j + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Format { parts }
    }

    /// True when the format uses `label`.
    pub fn uses(&self, label: Label) -> bool {
        self.parts.contains(&Part::Label(label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn parses_like_coredns() {
        assert_eq!(Format::parse("").parts, vec![]);
        assert_eq!(Format::parse("A").parts, vec![Part::Literal("A".into())]);
        assert_eq!(
            Format::parse("A {type} B").parts,
            vec![Part::Literal("A ".into()), Part::Label(Label::Type), Part::Literal(" B".into())]
        );
        assert_eq!(
            Format::parse("{{remote}}").parts,
            vec![Part::Literal("{".into()), Part::Label(Label::Remote), Part::Literal("}".into())]
        );
        assert_eq!(Format::parse("{test}").parts, vec![Part::Literal("{test}".into())]);
        assert_eq!(
            Format::parse("{test/meta2} {/test/meta4}").parts,
            vec![Part::Literal("{test/meta2}".into()), Part::Literal(" ".into()), Part::Metadata("test/meta4".into())]
        );
        assert_eq!(Format::parse("{/test/meta2").parts, vec![Part::Literal("{/test/meta2".into())]);
        assert_eq!(
            Format::parse("A } {name}").parts,
            vec![Part::Literal("A }".into()), Part::Literal(" ".into()), Part::Label(Label::Name)]
        );
    }
}
