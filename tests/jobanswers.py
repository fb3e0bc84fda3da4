"""EM answers for the job-session feed's tests: query result pages and entities, XML and JSON.

Written the way the EM writes them (namespace, attribute order, the JSON key order of v12 and
v13, camelCase keys with PascalCase values in v13), so the tests read the shapes the parser meets.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape, quoteattr

NS = "http://www.veeam.com/ent/v1.0"
HOST = "https://em01.example.com:9398/api"
DEFAULT_SERVER = ("6745b6a5-7e44-4d21-9a3b-4e2ec5c4cf7c", "vbr01.corp.local")


def iso(timestamp: float) -> str:
    whole = int(timestamp)
    millis = round((timestamp - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


@dataclass(frozen=True)
class Job:
    """A backup job session as the EM describes it."""

    guid: str
    job_name: str
    created: float
    job_type: str = "Backup"
    ended: float | None = None
    state: str = "Stopped"
    result: str = "Success"
    retry: bool = False
    progress: int = 100
    server: tuple[str, str] = DEFAULT_SERVER  # (GUID, name)
    job_guid: str = "2b078668-e45d-4eb3-abb0-275b0d130e7e"

    @property
    def uid(self) -> str:
        return f"urn:veeam:BackupJobSession:{self.guid}"

    def running(self, progress: int = 50) -> Job:
        return replace(self, state="Working", result="None", ended=None, progress=progress)

    def done(self, result: str, ended: float) -> Job:
        return replace(self, state="Stopped", result=result, ended=ended, progress=100)


def _name(job: Job) -> str:
    return f"{job.job_name}@{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(int(job.created)))}"


def _xml_session(job: Job) -> str:
    server_guid, server_name = job.server
    href = f"{HOST}/backupSessions/{job.guid}"
    parts = [
        f'<BackupJobSession Href={quoteattr(href + "?format=Entity")} Type="BackupJobSession" '
        f"Name={quoteattr(_name(job))} UID={quoteattr(job.uid)}>",
        "<Links>",
        f'<Link Href="{HOST}/backupServers/{server_guid}" Name={quoteattr(server_name)} '
        'Type="BackupServerReference" Rel="Up" />',
        f'<Link Href="{HOST}/jobs/{job.job_guid}" Name={quoteattr(job.job_name)} '
        'Type="JobReference" Rel="Up" />',
        f'<Link Href="{href}" Name={quoteattr(_name(job))} Type="BackupJobSessionReference" '
        'Rel="Alternate" />',
        "</Links>",
        f"<JobUid>urn:veeam:Job:{job.job_guid}</JobUid>",
        f"<JobName>{escape(job.job_name)}</JobName>",
        f"<JobType>{escape(job.job_type)}</JobType>",
        f"<CreationTimeUTC>{iso(job.created)}</CreationTimeUTC>",
    ]
    if job.ended is not None:
        parts.append(f"<EndTimeUTC>{iso(job.ended)}</EndTimeUTC>")
    parts += [
        f"<State>{job.state}</State>",
        f"<Result>{job.result}</Result>",
        f"<Progress>{job.progress}</Progress>",
        f"<IsRetry>{'true' if job.retry else 'false'}</IsRetry>",
        "</BackupJobSession>",
    ]
    return "".join(parts)


def xml_entity(job: Job) -> bytes:
    body = _xml_session(job).replace("<BackupJobSession ", f'<BackupJobSession xmlns="{NS}" ', 1)
    return ('<?xml version="1.0" encoding="utf-8"?>' + body).encode()


def xml_page(jobs: list[Job], *, page: int = 1, pages: int = 1, page_size: int = 500) -> bytes:
    sessions = "".join(_xml_session(job) for job in jobs)
    return (
        f'<QueryResult xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="{NS}">'
        f"<Entities><BackupJobSessions>{sessions}</BackupJobSessions></Entities>"
        f'<PagingInfo PageNum="{page}" PageSize="{page_size}" PagesCount="{pages}"><Links />'
        "</PagingInfo></QueryResult>"
    ).encode()


def _json_session(job: Job) -> dict[str, object]:
    server_guid, server_name = job.server
    href = f"{HOST}/backupSessions/{job.guid}"
    return {
        "IsRetry": job.retry,
        "JobUid": f"urn:veeam:Job:{job.job_guid}",
        "JobName": job.job_name,
        "JobType": job.job_type,
        "CreationTimeUTC": iso(job.created),
        "EndTimeUTC": None if job.ended is None else iso(job.ended),
        "State": job.state,
        "Result": job.result,
        "Progress": job.progress,
        "FailureMessage": None,
        "Name": _name(job),
        "UID": job.uid,
        "Links": [
            {
                "Rel": "Up",
                "Href": f"{HOST}/backupServers/{server_guid}",
                "Name": server_name,
                "Type": "BackupServerReference",
            },
            {
                "Rel": "Up",
                "Href": f"{HOST}/jobs/{job.job_guid}",
                "Name": job.job_name,
                "Type": "JobReference",
            },
        ],
        "Href": href + "?format=Entity",
        "Type": "BackupJobSession",
    }


def _camel(value: object) -> object:
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: _camel(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_camel(item) for item in value]
    return value


def json_page(
    jobs: list[Job], *, page: int = 1, pages: int = 1, page_size: int = 500, v13: bool = False
) -> bytes:
    document: object = {
        "Refs": None,
        "Entities": {
            "Jobs": None,
            "BackupJobSessions": {"BackupJobSessions": [_json_session(job) for job in jobs]},
            "SystemSessions": None,
        },
        "Resources": None,
        "Links": None,
        "PagingInfo": {"Links": [], "PageNum": page, "PageSize": page_size, "PagesCount": pages},
    }
    return json.dumps(_camel(document) if v13 else document).encode()


def json_entity(job: Job, *, v13: bool = False) -> bytes:
    document: object = _json_session(job)
    return json.dumps(_camel(document) if v13 else document).encode()
