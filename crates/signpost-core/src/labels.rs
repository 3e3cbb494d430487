//! Labels of destinations, fragments and certificates (`GET|PUT|PATCH .../{name}/labels`): read
//! and written with the entity's own access rules, never touching its body or ETag.

use signpost_model::{
    validate_label_patch, validate_labels, EntityKind, Label, LabelAction, Level,
};
use signpost_store::WriteOp;

use crate::access::Access;
use crate::audit::Entry;
use crate::{Error, Principal, Result, Signpost};

fn missing(kind: EntityKind, name: &str, level: Level) -> Error {
    Error::NotFound(format!(
        "The {} '{name}' does not exist on {level} level",
        kind.noun()
    ))
}

impl Signpost {
    /// `GET .../{name}/labels`: the entity's labels (an empty list when it has none).
    pub async fn entity_labels(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        name: &str,
    ) -> Result<Vec<Label>> {
        self.may(who, level, kind, Access::Read).await?;
        let entity = self
            .store()
            .get_entity(&who.owner(level), kind, name)
            .await?
            .ok_or_else(|| missing(kind, name, level))?;
        Ok(entity.labels)
    }

    /// `PUT .../{name}/labels`: replaces all of the entity's labels.
    pub async fn set_entity_labels(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        name: &str,
        labels: Vec<Label>,
    ) -> Result<()> {
        self.may(who, level, kind, Access::Write).await?;
        let written = async {
            validate_labels(&labels).map_err(|e| Error::BadRequest(e.to_string()))?;
            self.write_labels(
                level,
                kind,
                name,
                WriteOp::SetLabels {
                    owner: who.owner(level),
                    kind,
                    name: name.into(),
                    labels,
                },
            )
            .await
        }
        .await;
        let entry = Entry::tenant(who, level, "set-labels", kind.as_str()).name(name);
        self.audited(entry, 200, written).await
    }

    /// `PATCH .../{name}/labels`: adds or removes labels (values of a key, or whole keys).
    pub async fn patch_entity_labels(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        name: &str,
        action: LabelAction,
        labels: Vec<Label>,
    ) -> Result<()> {
        self.may(who, level, kind, Access::Write).await?;
        let written = async {
            validate_label_patch(&labels).map_err(|e| Error::BadRequest(e.to_string()))?;
            self.write_labels(
                level,
                kind,
                name,
                WriteOp::PatchLabels {
                    owner: who.owner(level),
                    kind,
                    name: name.into(),
                    action,
                    labels,
                },
            )
            .await
        }
        .await;
        let entry = Entry::tenant(who, level, "patch-labels", kind.as_str()).name(name);
        self.audited(entry, 200, written).await
    }

    async fn write_labels(
        &self,
        level: Level,
        kind: EntityKind,
        name: &str,
        op: WriteOp,
    ) -> Result<()> {
        match self.write(vec![op]).await {
            Ok(_) => Ok(()),
            Err(signpost_store::Error::NotFound { .. }) => Err(missing(kind, name, level)),
            Err(e) => Err(e.into()),
        }
    }
}
