"""The retrieval step of docs/rag-pipeline.md: BM25 over Markdown-KV chunks.

Each ``.md`` file that ``target-dativo-markdown-kv`` wrote is one chunk (one record).
A question is answered by the best-scoring chunk: its ``## Record <id>`` block is parsed
back with :mod:`dativo.markdown_kv`, and the value of the key the question asks for is
the answer. In a real RAG pipeline the top chunks go into the LLM's prompt instead; the
ids (``doc_id``, the file, the manifest table) trace every answer back to its source row.

Usage: ``python samples/rag/ask.py [CHUNK_FOLDER]`` (default: where the tutorial's
``meltano run`` writes the products).
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal
from pathlib import Path

from rank_bm25 import BM25Okapi

from dativo.markdown_kv import RecordBlock, compact_json, parse_records

DEFAULT_FOLDER = Path("output/warehouse/markdown_kv/demo/products")
QUESTIONS = [
    ("Which tent withstands snow loads?", "name"),
    ("How many years of warranty does the titanium stove have?", "warranty_years"),
    ("What does the rechargeable headlamp cost?", "price"),
]
"""Each question, and the key of the retrieved record that answers it."""


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers: all BM25 needs here."""
    return re.findall(r"[a-z0-9]+", text.lower())


def load_chunks(folder: Path) -> list[tuple[str, RecordBlock]]:
    """Every file's text and its record (one ``## Record`` block per file)."""
    chunks = []
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for block in parse_records(text, source=str(path), parse_float=Decimal):
            chunks.append((text, block))
    if not chunks:
        raise SystemExit(f"no Markdown-KV chunks in {folder}; run the pipeline first")
    return chunks


def answer(question: str, key: str, index: BM25Okapi,
           chunks: list[tuple[str, RecordBlock]]) -> tuple[str, RecordBlock]:
    """The value of ``key`` in the best chunk for ``question``, and that chunk's record."""
    scores = index.get_scores(tokenize(question))
    best = max(range(len(chunks)), key=lambda i: scores[i])
    block = chunks[best][1]
    value = block.record[key]
    return (value if isinstance(value, str) else compact_json(value)), block


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else DEFAULT_FOLDER
    chunks = load_chunks(folder)
    index = BM25Okapi([tokenize(text) for text, _ in chunks])
    print(f"{len(chunks)} chunks from {folder}")
    for question, key in QUESTIONS:
        value, block = answer(question, key, index, chunks)
        print(f"Q: {question}\nA: {value}  (record {block.doc_id}: {block.record['name']})")


if __name__ == "__main__":
    main(sys.argv[1:])
