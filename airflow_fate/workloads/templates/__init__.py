"""Workflow templates: one module per published LLM application, plus the controlled one.

`REAL_DAG` lists the templates of the ``real-dag`` suite in a fixed order (the order is
part of the seeded mix, so appending keeps earlier draws meaningful but reordering does
not). `shared_context_fanout` is the parametrised shape of the ``prefix-reuse`` suite.
"""

from __future__ import annotations

from airflow_fate.workloads.templates import (
    chain_summary,
    chat_session,
    document_vqa,
    llm_compiler,
    map_reduce_summary,
    meeting_summary,
    metagpt_coding,
    multi_agent_debate,
    rag_judge,
    tree_of_thoughts,
)

REAL_DAG = (
    map_reduce_summary.TEMPLATE,
    chain_summary.TEMPLATE,
    metagpt_coding.TEMPLATE,
    rag_judge.TEMPLATE,
    multi_agent_debate.TEMPLATE,
    tree_of_thoughts.TEMPLATE,
    llm_compiler.TEMPLATE,
    chat_session.TEMPLATE,
    meeting_summary.TEMPLATE,
    document_vqa.TEMPLATE,
)

__all__ = ["REAL_DAG"]
