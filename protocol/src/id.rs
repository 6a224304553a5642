//! Identifiers: [`DomainName`], [`ProductId`] (`domain/name`) and [`ProductRef`]
//! (`domain/name[@version]`, as typed on the command line).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(String);

fn check_label(kind: &str, s: &str) -> Result<(), IdError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(IdError(format!(
            "invalid {kind} {:?}: use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            s.chars().take(80).collect::<String>()
        )))
    }
}

/// A business domain's name, e.g. `sales`: `[a-z0-9][a-z0-9-]{0,62}`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Validates and wraps a domain name.
    pub fn new(s: &str) -> Result<Self, IdError> {
        check_label("domain name", s)?;
        Ok(DomainName(s.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product's identity, `domain/name`; versions are semver and kept beside it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProductId {
    domain: DomainName,
    name: String,
}

impl ProductId {
    /// Builds an id from a domain and a product name, validating the name.
    pub fn new(domain: DomainName, name: &str) -> Result<Self, IdError> {
        check_label("product name", name)?;
        Ok(ProductId {
            domain,
            name: name.to_owned(),
        })
    }

    /// The owning domain.
    pub fn domain(&self) -> &DomainName {
        &self.domain
    }

    /// The product name within its domain.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A product and optionally one version of it, typed as `domain/name[@version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRef {
    /// The product.
    pub id: ProductId,
    /// The version, or `None` for the latest known.
    pub version: Option<semver::Version>,
}

macro_rules! string_serde {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(DomainName);
string_serde!(ProductId);

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainName::new(s)
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.name)
    }
}

impl FromStr for ProductId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (domain, name) = s.split_once('/').ok_or_else(|| {
            IdError(format!(
                "invalid product id {:?}: expected domain/name, e.g. sales/orders",
                s.chars().take(80).collect::<String>()
            ))
        })?;
        ProductId::new(DomainName::new(domain)?, name)
    }
}

impl fmt::Display for ProductRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

impl FromStr for ProductRef {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, version) = match s.split_once('@') {
            Some((id, v)) => {
                let v = semver::Version::parse(v).map_err(|e| {
                    IdError(format!(
                        "invalid version {v:?} in {s:?}: {e}; use semver such as 1.2.0"
                    ))
                })?;
                (id, Some(v))
            }
            None => (s, None),
        };
        Ok(ProductRef {
            id: id.parse()?,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let r: ProductRef = "sales/orders@1.2.0".parse().unwrap();
        assert_eq!(r.id.domain().as_str(), "sales");
        assert_eq!(r.to_string(), "sales/orders@1.2.0");
        assert!("Sales/orders".parse::<ProductId>().is_err());
        assert!("sales".parse::<ProductId>().is_err());
        assert!("sales/-x".parse::<ProductId>().is_err());
        assert!("sales/a/b".parse::<ProductId>().is_err());
        assert!("sales/orders@1".parse::<ProductRef>().is_err());
        assert!(ProductId::new(DomainName::new("a").unwrap(), &"x".repeat(64)).is_err());
    }
}
