//! Reads how an app's live sites differ from the release Gantry last put in place: the
//! manifest object's release and the objects of that release as the bucket lists them
//! (`plan::drift::site` decides). Read-only.

use super::sync::{read_remote, SiteError};
use super::S3Target;
use crate::domain::drift::DriftItem;
use crate::domain::{AppSpec, Release};
use crate::ports::ObjectStore;

/// The drift of every site of `spec` that `release` recorded a site release for.
pub async fn sites(
    spec: &AppSpec,
    release: &Release,
    store: &dyn ObjectStore,
) -> Result<Vec<DriftItem>, SiteError> {
    let mut items = Vec::new();
    for site in &spec.sites {
        let Some(released) = release.sites.get(&site.name) else {
            continue;
        };
        let (listing, manifest) = read_remote(store, &S3Target::of(site)).await?;
        items.extend(crate::plan::drift::site(
            &site.name,
            released.release,
            manifest.release,
            &manifest.files,
            &listing,
        ));
    }
    Ok(items)
}
