use serde_json::json;

use super::super::explain::{Change, nearest};
use super::super::{CommitInfo, Lookup, Store};
use super::key;

fn commit(store: &Store, stage: &str, fp: serde_json::Value) -> String {
    let k = key(&format!("{stage}{fp}"));
    let Lookup::Miss(r) = store.lookup(&k).unwrap() else {
        panic!()
    };
    let meta = json!({ "fingerprint": fp, "outputs": null });
    r.commit(CommitInfo {
        stage: stage.into(),
        kind: "train".into(),
        pipeline: None,
        meta,
    })
    .unwrap();
    k
}

#[test]
fn nearest_entry_names_the_components_that_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let fp = |rank: u32, lr: &str| json!({ "kind": "train", "params": { "rank": rank, "lr": lr, "seed": 42 }, "upstream": { "model": ["aa"] } });
    commit(&store, "ft@rank=4", fp(4, "2e-4"));
    let near = commit(&store, "ft@rank=8", fp(8, "2e-4"));
    commit(&store, "other", fp(8, "1e-4"));
    // Now: rank 8 with a new learning rate and a new upstream model.
    let mut now = fp(8, "1e-4");
    now["upstream"]["model"][0] = json!("bb");
    let n = nearest(&store, "ft", &now).unwrap().unwrap();
    assert_eq!(n.entry.key, near);
    assert_eq!(
        n.changes,
        vec![
            Change {
                path: "params.lr".into(),
                stored: Some("\"2e-4\"".into()),
                now: Some("\"1e-4\"".into())
            },
            Change {
                path: "upstream.model.0".into(),
                stored: Some("\"aa\"".into()),
                now: Some("\"bb\"".into())
            },
        ]
    );
    assert!(nearest(&store, "eval", &now).unwrap().is_none());
}
