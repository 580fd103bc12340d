"""Writes src/hf2vllm/data/prompts.jsonl: the bundled prompt set (written for this project).

Re-run after editing the lists below; the long-context requests are assembled from the project's own
text so that they exceed 1,500 tokens without shipping third-party material.
"""

import json
from pathlib import Path

U = "user"
short = [
    ("fact-capital", "What is the capital of France?"),
    ("fact-boiling", "At what temperature does water boil at sea level, in Celsius?"),
    ("fact-planets", "How many planets are in the solar system? Name them."),
    ("fact-photosynthesis", "Explain photosynthesis in two sentences."),
    ("fact-dna", "What does DNA stand for?"),
    ("fact-moon", "Why does the Moon show phases?"),
    ("fact-gpu", "What is a GPU used for in machine learning?"),
    ("fact-http", "What does HTTP status code 404 mean?"),
    ("reason-apples", "I had 5 apples, ate 2 and bought 7 more. How many apples do I have? Think step by step."),
    ("reason-train", "A train travels 60 km in 45 minutes. What is its average speed in km/h?"),
    ("reason-sequence", "What is the next number in the sequence 2, 4, 8, 16?"),
    ("reason-logic", "All cats are animals. Some animals are black. Can we conclude that some cats are black?"),
    ("reason-age", "Tom is twice as old as Ann. In 5 years the sum of their ages will be 40. How old is Ann?"),
    ("reason-compare", "Which is larger, 0.9 or 0.11? Explain."),
    ("code-python-reverse", "Write a Python function that reverses a string."),
    ("code-python-fib", "Write a Python function that returns the n-th Fibonacci number iteratively."),
    ("code-sql", "Write an SQL query that counts orders per customer in a table orders(customer_id, id)."),
    ("code-bash", "Write a bash one-liner that counts the lines of all .py files in a directory."),
    ("code-explain", "Explain what this code does: `print(sum(x * x for x in range(10)))`"),
    ("code-bug", "Find the bug: `def avg(xs): return sum(xs) / len(xs) if xs else sum(xs)`"),
    ("code-js", "Write a JavaScript function that debounces another function."),
    ("json-person", 'Return only JSON with keys "name" and "age" for a person called Ada who is 36.'),
    ("json-list", "Give a JSON array of three fruits with their colors, as objects with keys fruit and color."),
    ("json-config", "Write a JSON config for a web server with host, port and a list of allowed origins."),
    ("json-extract", 'Extract the date and amount as JSON from: "Paid 42.50 EUR on 2024-03-15 for coffee."'),
    ("multi-zh", "用一句话解释什么是机器学习。"),
    ("multi-ja", "日本の首都はどこですか？"),
    ("multi-ko", "안녕하세요! 오늘 날씨가 어때요?"),
    ("multi-ar", "ما هي عاصمة مصر؟"),
    ("multi-fr", "Traduis en anglais : « Le chat dort sur le canapé. »"),
    ("multi-de", "Was ist der Unterschied zwischen Wetter und Klima?"),
    ("multi-es", "¿Cuál es el río más largo de Sudamérica?"),
    ("multi-emoji", "Describe your perfect weekend using only emoji 🌞🏖️ and then explain it."),
    ("multi-mixed", "Translate 'thank you' into Chinese (谢谢), Arabic and Hindi, and show each script."),
    ("creative-haiku", "Write a haiku about autumn leaves."),
    ("creative-story", "Tell a three-sentence story about a robot who learns to paint."),
    ("creative-slogan", "Suggest a slogan for a bakery that only sells bread made with rye."),
    ("summarise-short", "Summarise in one sentence: The meeting was moved from Monday to Wednesday because "
                        "the projector was broken and the replacement arrives on Tuesday."),
    ("advice-sleep", "Give me three tips for sleeping better."),
    ("advice-learn", "How should I start learning to play the guitar?"),
    ("define-entropy", "Define entropy in information theory."),
    ("math-derivative", "What is the derivative of x^3 + 2x?"),
]
requests = [{"id": rid, "messages": [{"role": U, "content": text}]} for rid, text in short]
requests += [
    {"id": "system-pirate", "messages": [
        {"role": "system", "content": "You are a pirate. Answer every question like a pirate would."},
        {"role": U, "content": "How do I make a cup of tea?"}]},
    {"id": "system-terse", "messages": [
        {"role": "system", "content": "Answer with at most five words."},
        {"role": U, "content": "What is the largest ocean on Earth?"}]},
    {"id": "multiturn-math", "messages": [
        {"role": U, "content": "What is 12 times 12?"},
        {"role": "assistant", "content": "12 times 12 is 144."},
        {"role": U, "content": "And what is that divided by 3?"}]},
    {"id": "multiturn-travel", "messages": [
        {"role": U, "content": "I want to visit Japan in spring."},
        {"role": "assistant", "content": "Spring is a lovely time: cherry blossoms bloom from late March."},
        {"role": U, "content": "Which cities should I see?"},
        {"role": "assistant", "content": "Tokyo, Kyoto and Osaka are popular choices."},
        {"role": U, "content": "How many days should I spend in Kyoto?"}]},
    {"id": "prompt-raw", "prompt": "The three primary colors are"},
]

# Long contexts: a synthetic service log and a long design document, both generated here.
log_lines = []
for i in range(34):
    level = "ERROR" if i % 37 == 11 else ("WARN" if i % 9 == 4 else "INFO")
    log_lines.append(f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}Z {level} worker-{i % 4} "
                     f"request id={1000 + i} latency_ms={(i * 37) % 500 + 20} path=/v1/items/{i % 13}")
doc_sections = []
topics = ["caching", "batching", "retries", "timeouts", "logging", "metrics", "tracing", "quotas",
          "sharding", "replication", "backups", "migrations", "alerts", "capacity", "security", "testing",
          "deployments", "documentation", "onboarding"]
for n, topic in enumerate(topics):
    doc_sections.append(
        f"Section {n + 1}: {topic}. The service handles {topic} in a dedicated module. Each change to the "
        f"{topic} module is reviewed by two engineers and rolled out behind a feature flag. Operators watch "
        f"the {topic} dashboard for one hour after each rollout, and roll back when error rates rise above "
        f"one percent. The {topic} settings live in the configuration repository and are versioned with the "
        f"code. Known issue {n + 1}: under heavy load the {topic} path adds {5 * (n + 1)} milliseconds."
    )
story = []
for day in range(1, 51):
    story.append(f"Day {day}: the expedition walked {8 + day % 5} kilometres, saw {day % 7} birds, and camped "
                 f"near a {'river' if day % 2 else 'hill'}. The cook made {'soup' if day % 3 else 'bread'}.")
requests += [
    {"id": "long-log-errors", "messages": [{"role": U, "content":
        "Here is a service log:\n" + "\n".join(log_lines) + "\n\nWhich request ids logged an ERROR?"}]},
    {"id": "long-design-doc", "messages": [{"role": U, "content":
        "Read this design document:\n\n" + "\n\n".join(doc_sections) +
        "\n\nWhich section describes the largest known added latency, and how large is it?"}]},
    {"id": "long-expedition", "messages": [{"role": U, "content":
        "Expedition diary:\n" + "\n".join(story) + "\n\nOn which days did the cook make bread?"}]},
]

out = Path(__file__).resolve().parents[1] / "src" / "hf2vllm" / "data" / "prompts.jsonl"
out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests), encoding="utf-8")
print(f"wrote {len(requests)} requests to {out}")
