"""The agent directory: agent id → name and team, so reports and the review UI show people, not ids.

A CSV file with the columns ``agent_id,name,team`` (a header line, UTF-8 or UTF-8 with BOM as Excel writes it), or a
YAML mapping ``agent_id: {name: …, team: …}``. Errors name the file and the line (CSV) or the agent (YAML).
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callqa.calls import Identifier
from callqa.yamlfile import describe, read_yaml, require_mapping


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: Identifier
    name: str = Field(default="", max_length=200)
    team: str = Field(default="", max_length=200)


class DirectoryError(ValueError):
    pass


class AgentDirectory:
    def __init__(self, agents: list[Agent] | None = None):
        self.agents = {a.agent_id: a for a in agents or []}

    def name(self, agent_id: str | None) -> str:
        agent = self.agents.get(agent_id or "")
        return agent.name if agent and agent.name else (agent_id or "")

    def team(self, agent_id: str | None) -> str:
        agent = self.agents.get(agent_id or "")
        return agent.team if agent else ""

    def members(self, team: str) -> list[str]:
        return sorted(a.agent_id for a in self.agents.values() if a.team == team)

    @classmethod
    def load(cls, path: str | Path) -> AgentDirectory:
        path = Path(path)
        if not path.exists():
            raise DirectoryError(f"{path}: no such agent directory file")
        if path.suffix.lower() in {".yaml", ".yml"}:
            return cls(_from_yaml(path))
        return cls(_from_csv(path))


def _from_csv(path: Path) -> list[Agent]:
    agents = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "agent_id" not in reader.fieldnames:
            raise DirectoryError(f"{path}:1: the header must name the columns agent_id,name,team")
        for line, row in enumerate(reader, start=2):
            try:
                agents.append(Agent(agent_id=row.get("agent_id") or "", name=row.get("name") or "",
                                    team=row.get("team") or ""))
            except ValidationError as err:
                first = err.errors()[0]
                raise DirectoryError(f"{path}:{line}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return agents


def _under(agent_id: str, where: list[str]) -> list[str]:
    return [agent_id, *where]


def _from_yaml(path: Path) -> list[Agent]:
    document = read_yaml(path, DirectoryError, "agent directory")
    data = require_mapping(document, DirectoryError, "an agent directory (agent_id → {name, team})")
    agents = []
    for agent_id, entry in data.items():
        if entry is not None and not isinstance(entry, dict):
            raise DirectoryError(document.problem([str(agent_id)], "give {name, team}"))
        try:
            agents.append(Agent(agent_id=str(agent_id), **(entry or {})))
        except ValidationError as err:
            raise DirectoryError(describe(err, document, functools.partial(_under, str(agent_id)))) from None
    return agents
