//! DynamoDB token listings read the active tokens and nothing else (`store/dynamo/tokens.rs`):
//! expired records, which TTL deletion leaves for up to two days, are below the Query's key
//! condition, and revoked or rotated ones have left the indexes. Counted with the items each
//! Query response says it read (`ScannedCount`), on DynamoDB Local. Items an earlier version
//! wrote (issue-time sort keys, index keys kept when revoked) are listed first and paged
//! through like the others.
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use gatehouse::model::{TokenKind, TokenRecord};
use gatehouse::store::conformance::{NOW, family_token, token};
use gatehouse::store::{DynamoStore, TokenQuery, TokenStore, token_sort_key};

use crate::common;

/// Sums the `ScannedCount` of every Query response: the items DynamoDB read (and bills).
#[derive(Debug, Clone, Default)]
struct Scanned(Arc<AtomicI32>);

impl Scanned {
    fn take(&self) -> i32 {
        self.0.swap(0, Ordering::SeqCst)
    }
}

impl Intercept for Scanned {
    fn name(&self) -> &'static str {
        "ScannedCount"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(out) = context.output_or_error()
            && let Some(q) = out.downcast_ref::<QueryOutput>()
        {
            self.0.fetch_add(q.scanned_count, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A DynamoDB store on a fresh table whose Queries are counted, and the raw client.
async fn counted_store() -> Option<(DynamoStore, Scanned, aws_sdk_dynamodb::Client, String)> {
    let (_, ddb, table) = common::dynamo().await?;
    let scanned = Scanned::default();
    let counted = aws_sdk_dynamodb::Client::from_conf(ddb.config().to_builder().interceptor(scanned.clone()).build());
    Some((DynamoStore::new(counted, table.clone()), scanned, ddb, table))
}

fn query(kind: TokenKind, client: Option<&str>, user: Option<&str>) -> TokenQuery {
    TokenQuery { kind, client_id: client.map(Into::into), end_user: user.map(Into::into) }
}

fn ids(v: &[TokenRecord]) -> Vec<&str> {
    v.iter().map(|t| t.id.as_str()).collect()
}

async fn raw_item(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("TOKEN#{id}")))
        .key("sk", AttributeValue::S("TOKEN".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item.unwrap()
}

const INDEX_KEYS: [&str; 4] = ["client_pk", "user_pk", "client_user_pk", "family_pk"];

#[tokio::test]
async fn listings_and_counts_read_only_the_active_tokens() {
    let Some((store, scanned, ddb, table)) = counted_store().await else { return };
    // A busy client's partition: 8 active access tokens among 8 expired and 16 revoked ones,
    // and a refresh token rotated 6 times (6 rotated records, 1 active).
    let mut active = Vec::new();
    for i in 0..32i64 {
        let id = format!("t{i:02}");
        match i % 4 {
            0 => {
                store.put_token(&token(&id, TokenKind::Access, "hot", Some("alice"), NOW + i)).await.unwrap();
                active.push(id);
            }
            1 => {
                let mut expired = token(&id, TokenKind::Access, "hot", Some("alice"), NOW - 3600 + i);
                expired.expires_at = NOW - 100 + i;
                store.put_token(&expired).await.unwrap();
            }
            _ => {
                store.put_token(&token(&id, TokenKind::Access, "hot", Some("alice"), NOW + i)).await.unwrap();
                assert!(store.revoke_token(&id, NOW + 40).await.unwrap());
            }
        }
    }
    store.put_token(&family_token("r0", TokenKind::Refresh, "f1", NOW)).await.unwrap();
    for n in 1..=6 {
        let next = family_token(&format!("r{n}"), TokenKind::Refresh, "f1", NOW + n);
        assert!(store.rotate_refresh(&format!("r{}", n - 1), NOW + n, "resp", &[next]).await.unwrap());
    }
    scanned.take();

    let now = NOW + 40;
    let hot = query(TokenKind::Access, Some("hot"), None);
    let (page, next) = store.list_tokens_after(&hot, now, None, 100).await.unwrap();
    assert_eq!((ids(&page), next), (active.iter().map(String::as_str).collect(), None));
    assert_eq!(scanned.take(), 8, "the cursor listing read the 8 active tokens, none of the 24 others");
    assert_eq!(store.list_tokens(&hot, now, 0, 100).await.unwrap().0, page);
    assert_eq!(scanned.take(), 8, "the offset listing");
    assert_eq!(store.count_tokens(&hot, now).await.unwrap(), 8);
    assert_eq!(scanned.take(), 8, "the count");
    for q in [query(TokenKind::Access, None, Some("alice")), query(TokenKind::Access, Some("hot"), Some("alice"))] {
        assert_eq!(store.count_tokens(&q, now).await.unwrap(), 8);
        assert_eq!(scanned.take(), 8, "{q:?}");
    }
    let refresh = query(TokenKind::Refresh, Some("c1"), None);
    assert_eq!(ids(&store.list_tokens_after(&refresh, now, None, 10).await.unwrap().0), ["r6"]);
    assert_eq!(scanned.take(), 1, "the rotated refresh tokens are not read");
    // Later, the tokens that expired meanwhile are not read either.
    assert_eq!(store.count_tokens(&hot, NOW + 3600 + 10).await.unwrap(), 5);
    assert_eq!(scanned.take(), 5);

    // Revocation and rotation remove the index keys (the record stays, for introspection and
    // replay detection); an active token keeps them.
    for id in ["t02", "r0", "r5"] {
        let item = raw_item(&ddb, &table, id).await;
        assert!(INDEX_KEYS.iter().all(|k| !item.contains_key(*k)), "{id}: {:?}", item.keys());
        assert!(store.get_token(id, now).await.unwrap().is_some(), "{id}: the record is kept");
    }
    let item = raw_item(&ddb, &table, "r6").await;
    assert!(INDEX_KEYS.iter().all(|k| item.contains_key(*k)), "{:?}", item.keys());
    assert_eq!(item["issued_sk"], AttributeValue::S(token_sort_key(NOW + 6 + 3600, "r6")));
}

/// Rewrites a token's item as an earlier version left it: its sort key the issue time, and
/// (when revoked) its index keys kept.
async fn as_written_before(ddb: &aws_sdk_dynamodb::Client, table: &str, t: &TokenRecord, revoked: bool) {
    let mut item = raw_item(ddb, table, &t.id).await;
    item.insert("issued_sk".into(), AttributeValue::S(format!("{:012}#{}", t.issued_at, t.id)));
    if revoked {
        item.insert("revoked_at".into(), AttributeValue::N(NOW.to_string()));
    }
    ddb.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
}

#[tokio::test]
async fn items_of_earlier_versions_are_listed_first_and_paged_through() {
    let Some((store, scanned, ddb, table)) = counted_store().await else { return };
    // Earlier versions' items: two active (l1 expires last of all), one expired, one revoked.
    let mut old = Vec::new();
    for (id, issued, lifetime, revoked) in [
        ("l1", NOW - 10, 90_000, false),
        ("l2", NOW - 5, 3600, false),
        ("l3", NOW - 4000, 3600, false),
        ("l4", NOW - 3, 3600, true),
    ] {
        let t = TokenRecord { expires_at: issued + lifetime, ..token(id, TokenKind::Access, "c", None, issued) };
        store.put_token(&t).await.unwrap();
        as_written_before(&ddb, &table, &t, revoked).await;
        old.push(t);
    }
    for (id, issued) in [("n2", NOW + 2), ("n1", NOW + 1)] {
        store.put_token(&token(id, TokenKind::Access, "c", None, issued)).await.unwrap();
    }
    let order = ["l1", "l2", "n1", "n2"];
    let q = query(TokenKind::Access, Some("c"), None);
    scanned.take();
    assert_eq!(ids(&store.list_tokens(&q, NOW, 0, 10).await.unwrap().0), order);
    assert_eq!(scanned.take(), 4 + 2, "the earlier items are filtered as before: l3 and l4 read too");
    assert_eq!(store.count_tokens(&q, NOW).await.unwrap(), 4);

    // Page by page, by cursor and by offset: each once, in order; the cursor of an earlier
    // item is its own sort key, which earlier versions' listings handed out too.
    let mut seen = Vec::new();
    let mut after = None::<String>;
    loop {
        let (page, next) = store.list_tokens_after(&q, NOW, after.as_deref(), 1).await.unwrap();
        let (by_offset, offset_next) = store.list_tokens(&q, NOW, seen.len(), 1).await.unwrap();
        assert_eq!(page, by_offset);
        seen.extend(page.iter().map(|t| t.id.clone()));
        if let Some(n) = &offset_next {
            let (following, _) = store.list_tokens_after(&q, NOW, Some(n), 10).await.unwrap();
            assert_eq!(ids(&following), &order[seen.len()..], "the offset page's cursor goes on from it");
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, order);
    let (_, next) = store.list_tokens_after(&q, NOW, None, 1).await.unwrap();
    assert_eq!(next.as_deref(), Some(format!("{:012}#l1", NOW - 10).as_str()));
    let (page, _) = store.list_tokens_after(&q, NOW, Some(&format!("{:012}#l2", NOW - 5)), 10).await.unwrap();
    assert_eq!(ids(&page), ["n1", "n2"]);

    // Revoking an earlier item through this version takes it out of the indexes too.
    assert!(store.revoke_token("l1", NOW).await.unwrap());
    let item = raw_item(&ddb, &table, "l1").await;
    assert!(INDEX_KEYS.iter().all(|k| !item.contains_key(*k)), "{:?}", item.keys());
    assert_eq!(ids(&store.list_tokens(&q, NOW, 0, 10).await.unwrap().0), ["l2", "n1", "n2"]);
}
