use serde_json::Value;

use super::*;

#[tokio::test]
async fn post_answers_a_chat_completion_echoing_the_model_and_records_headers() {
    let upstream = Upstream::start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/openai", upstream.url()))
        .header("content-type", "application/json")
        .header("jwt", "header.payload.sig")
        .body(r#"{"model":"gpt-3.5-turbo","messages":[]}"#)
        .send()
        .await
        .expect("upstream answers");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-3.5-turbo");
    assert_eq!(body["choices"][0]["message"]["content"], COMPLETION_TEXT);

    let received = upstream.received().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, "/openai");
    assert_eq!(received[0].header_values("JWT"), vec!["header.payload.sig"]);
}

#[tokio::test]
async fn post_with_an_unparsable_body_still_answers_with_a_default_model() {
    let upstream = Upstream::start().await;
    let body: Value = reqwest::Client::new()
        .post(format!("{}/openai", upstream.url()))
        .body("not json")
        .send()
        .await
        .expect("upstream answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body["model"], "mock-llm");
}

#[tokio::test]
async fn get_says_it_is_the_llm_endpoint() {
    let upstream = Upstream::start().await;
    let response = reqwest::get(format!("{}/openai", upstream.url()))
        .await
        .expect("upstream answers");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    assert!(text.contains("LLM endpoint"), "{text}");
}
