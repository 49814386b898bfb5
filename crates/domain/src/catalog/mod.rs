//! The catalog: teams, people, services, organisations and the sections later domains
//! give behaviour to. Every other domain reads it; the dependency graph is its backbone.
//!
//! - [`model`]: the entities and the document that declares them.
//! - [`parse`]: reading a document from YAML or JSON, with paths in every error.
//! - [`validate`]: every rule a catalog must satisfy, all problems reported at once.
//! - [`graph`]: impact (transitive dependents) and transitive dependencies.
//! - [`apply`]: the declarative import plan (created, updated, deleted, unchanged).
//! - [`secret`]: secret fields, which never leave Muster in clear.

pub mod apply;
pub mod graph;
pub mod model;
pub mod parse;
pub mod secret;
pub mod validate;

pub use model::*;

/// The demo world (`fixtures/seed-world.yaml`, the format's contract) as a catalog, for
/// the domain's tests.
#[cfg(test)]
pub(crate) fn seed_world() -> Catalog {
    parse::parse_catalog(
        include_str!("../../../../fixtures/seed-world.yaml"),
        parse::Format::Yaml,
    )
    .expect("the seed world parses")
}
