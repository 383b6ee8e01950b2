//! The inventory: the user's whole description of a cluster, read and checked.
//!
//! [`Inventory::load`] reads `inventory.toml` as `spec/inventory.md` defines it,
//! and either returns typed, validated values (with what is derived from them:
//! cluster DNS address, control-plane endpoint, pause image) or an
//! [`InventoryError`] listing every problem with its file, line and column.
//! Nothing here connects to a host.

mod diagnostic;
mod load;
mod model;
mod reader;
pub mod syntax;
mod versions;

pub use diagnostic::{Diagnostic, InventoryError, Location};
pub use load::{LoadContext, LocalFiles, MAX_INVENTORY_BYTES};
pub use model::*;
pub use versions::KubeVersion;
