"""SQL over asset contents, records and tags. Every record or tag query takes the workspace id."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from sqlalchemy import Table, delete, exists, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from opencomfy.assets.models import Asset, AssetContent, AssetCount, AssetTag
from opencomfy.assets.schemas import AssetQuery, PageRequest

A = Asset.__table__.c
T = AssetTag.__table__.c
C = AssetContent.__table__.c
COUNTS: Table = AssetCount.__table__  # type: ignore[assignment]  # declarative tables are Tables


def _insert_ignore(conn, table, values: dict[str, Any]):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())


# -- contents ---------------------------------------------------------------------------------

async def get_content(conn, content_hash: str) -> dict | None:
    row = (await conn.execute(select(AssetContent.__table__).where(C.hash == content_hash))
           ).mappings().first()
    return dict(row) if row else None


async def ensure_content(conn, *, content_hash: str, size: int, mime_type: str | None,
                         in_store: bool, source_url: str | None, now: int) -> bool:
    """Insert the content row unless present (then mark it stored if it now is); True if new."""
    result = await _insert_ignore(conn, AssetContent.__table__, {
        "hash": content_hash, "size_bytes": size, "mime_type": mime_type, "in_store": in_store,
        "source_url": source_url, "created_at": now})
    if result.rowcount:
        return True
    values: dict[str, Any] = {}
    if in_store:
        values["in_store"] = True
    if source_url:
        values["source_url"] = source_url
    if values:
        await conn.execute(update(AssetContent).where(C.hash == content_hash).values(**values))
    return False


async def downloaded_from(conn, *, workspace_id: str, url: str) -> dict | None:
    """This workspace's earliest record downloaded from `url`, over content in the store.

    Only the workspace's own records count: another workspace's download of the URL (the
    content's source_url) must not change what this one is answered."""
    row = (await conn.execute(select(Asset.__table__).join(AssetContent, C.hash == A.content_hash).where(
        A.workspace_id == workspace_id, A.system_metadata["source_url"].as_string() == url,
        C.in_store.is_(True)).order_by(A.created_at).limit(1))).mappings().first()
    return dict(row) if row else None


async def count_content_refs(conn, content_hash: str) -> int:
    """Records (of any workspace) that use this content."""
    return (await conn.execute(select(func.count()).select_from(Asset).where(
        A.content_hash == content_hash))).scalar_one()


async def delete_content(conn, content_hash: str) -> None:
    await conn.execute(delete(AssetContent).where(C.hash == content_hash))


# -- records ----------------------------------------------------------------------------------

async def _bump_count(conn, workspace_id: str, delta: int) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(COUNTS).values(workspace_id=workspace_id, n=delta)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["workspace_id"],
                                                  set_={"n": COUNTS.c.n + delta}))


async def insert_asset(conn, row: dict[str, Any], tags: dict[str, str]) -> None:
    """Insert a record and its tags (`tags`: tag -> origin)."""
    await conn.execute(insert(Asset).values(**row))
    await _bump_count(conn, row["workspace_id"], 1)
    if tags:
        await conn.execute(insert(AssetTag), [
            {"asset_id": row["id"], "tag": tag, "workspace_id": row["workspace_id"], "origin": origin}
            for tag, origin in tags.items()])


async def asset_id_exists(conn, asset_id: str) -> bool:
    """Whether any workspace holds this id (ids are global keys): only to refuse an insert
    that would collide, never to answer a lookup."""
    return (await conn.execute(select(Asset.id).where(Asset.id == asset_id))).first() is not None


async def get_asset(conn, *, workspace_id: str, asset_id: str) -> dict | None:
    row = (await conn.execute(select(Asset.__table__).where(
        A.id == asset_id, A.workspace_id == workspace_id))).mappings().first()
    return dict(row) if row else None


async def find_asset(conn, *, workspace_id: str, content_hash: str, name: str | None = None) -> dict | None:
    """A record of this workspace with this content (and name, when given)."""
    where = [A.workspace_id == workspace_id, A.content_hash == content_hash]
    if name is not None:
        where.append(A.name == name)
    row = (await conn.execute(select(Asset.__table__).where(*where).order_by(A.created_at).limit(1))
           ).mappings().first()
    return dict(row) if row else None


async def get_assets(conn, *, workspace_id: str, asset_ids: Sequence[str]) -> list[dict]:
    if not asset_ids:
        return []
    rows = (await conn.execute(select(Asset.__table__).where(
        A.workspace_id == workspace_id, A.id.in_(list(asset_ids))))).mappings().all()
    return [dict(r) for r in rows]


async def assets_of_jobs(conn, *, workspace_id: str, job_ids: Sequence[str]) -> list[dict]:
    rows = (await conn.execute(select(Asset.__table__).where(
        A.workspace_id == workspace_id, A.job_id.in_(list(job_ids))).order_by(A.created_at, A.id))
            ).mappings().all()
    return [dict(r) for r in rows]


async def assets_named(conn, *, workspace_id: str, names: Iterable[str]) -> list[dict]:
    names = list(set(names))
    if not names:
        return []
    rows = (await conn.execute(select(Asset.__table__).where(
        A.workspace_id == workspace_id, A.name.in_(names)))).mappings().all()
    return [dict(r) for r in rows]


async def update_asset(conn, *, workspace_id: str, asset_id: str, values: dict[str, Any]) -> None:
    await conn.execute(update(Asset).where(A.id == asset_id, A.workspace_id == workspace_id)
                       .values(**values))


async def delete_asset(conn, *, workspace_id: str, asset_id: str) -> None:
    await conn.execute(delete(AssetTag).where(T.asset_id == asset_id, T.workspace_id == workspace_id))
    deleted = await conn.execute(delete(Asset).where(A.id == asset_id, A.workspace_id == workspace_id))
    if deleted.rowcount:
        await _bump_count(conn, workspace_id, -deleted.rowcount)


async def count_preview_refs(conn, *, workspace_id: str, asset_id: str) -> int:
    """Other records that use this one as their preview."""
    return (await conn.execute(select(func.count()).select_from(Asset).where(
        A.workspace_id == workspace_id, A.preview_id == asset_id, A.id != asset_id))).scalar_one()


async def find_by_file(conn, *, workspace_id: str, file_path: str) -> dict | None:
    row = (await conn.execute(select(Asset.__table__).where(
        A.workspace_id == workspace_id, A.file_path == file_path).limit(1))).mappings().first()
    return dict(row) if row else None


async def records_with_files(conn, *, workspace_id: str) -> list[dict]:
    rows = (await conn.execute(select(A.id, A.file_path, A.file_mtime_ns, A.size, A.is_missing,
                                      A.content_hash).where(
        A.workspace_id == workspace_id, A.file_path.is_not(None)))).mappings().all()
    return [dict(r) for r in rows]


# -- tags -------------------------------------------------------------------------------------

async def tags_of(conn, asset_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {aid: [] for aid in asset_ids}
    if asset_ids:
        rows = await conn.execute(select(T.asset_id, T.tag).where(T.asset_id.in_(list(asset_ids))))
        for asset_id, tag in rows:
            out[asset_id].append(tag)
    return out


async def add_tags(conn, *, workspace_id: str, asset_id: str, tags: Sequence[str], origin: str) -> None:
    for tag in tags:
        await _insert_ignore(conn, AssetTag.__table__, {"asset_id": asset_id, "tag": tag,
                                                        "workspace_id": workspace_id, "origin": origin})


async def remove_tags(conn, *, workspace_id: str, asset_id: str, tags: Sequence[str]) -> None:
    if tags:
        await conn.execute(delete(AssetTag).where(T.asset_id == asset_id, T.workspace_id == workspace_id,
                                                  T.tag.in_(list(tags))))


def _metadata_clause(key: str, value: Any):
    element = A.user_metadata[key]
    if isinstance(value, bool):
        return element.as_boolean() == value
    if isinstance(value, int):
        return element.as_integer() == value
    if isinstance(value, float):
        return element.as_float() == value
    if isinstance(value, list):
        return or_(*(_metadata_clause(key, v) for v in value))
    return element.as_string() == str(value)


def _filters(workspace_id: str, query: AssetQuery, *, skip_first_include: bool = False) -> list:
    where = [A.workspace_id == workspace_id]
    # Tag tests are correlated EXISTS on the (asset_id, tag) primary key: one seek per
    # candidate record, so a page walking the sort index stops as soon as it is full.
    includes = query.include_tags[1:] if skip_first_include else query.include_tags
    for tag in includes:
        where.append(exists().where(T.asset_id == A.id, T.tag == tag, T.workspace_id == workspace_id))
    if query.exclude_tags:
        where.append(~exists().where(T.asset_id == A.id, T.tag.in_(query.exclude_tags),
                                     T.workspace_id == workspace_id))
    if query.name_contains:
        pattern = (query.name_contains.lower().replace("\\", "\\\\").replace("%", "\\%")
                   .replace("_", "\\_"))
        where.append(func.lower(A.name).like(f"%{pattern}%", escape="\\"))
    if query.asset_hash:
        where.append(A.content_hash == query.asset_hash)
    for key, value in query.metadata_filter.items():
        where.append(_metadata_clause(key, value))
    return where


async def _workspace_count(conn, workspace_id: str) -> int:
    n = (await conn.execute(select(AssetCount.__table__.c.n).where(
        AssetCount.__table__.c.workspace_id == workspace_id))).scalar_one_or_none()
    return n or 0


async def count_assets(conn, *, workspace_id: str, query: AssetQuery) -> int:
    """How many records match. Tag-only filters are counted on the tag index alone (a
    single tag is one covering range); other filters join the records."""
    tags_only = not (query.name_contains or query.asset_hash or query.metadata_filter)
    if tags_only and query.include_tags and not query.exclude_tags:
        first = AssetTag.__table__.alias("first_tag")
        if conn.dialect.name == "sqlite":
            # Further tags as IN (list): each probe stays inside the covering tag index.
            more = [first.c.asset_id.in_(select(T.asset_id).where(T.workspace_id == workspace_id,
                                                                  T.tag == tag))
                    for tag in query.include_tags[1:]]
        else:
            # PostgreSQL: a semi-join on the (asset_id, tag) key, which stays linear even when
            # the planner has no statistics yet (an IN list then became a quadratic loop).
            more = [exists().where(T.asset_id == first.c.asset_id, T.tag == tag)
                    for tag in query.include_tags[1:]]
        stmt = select(func.count()).select_from(first).where(
            first.c.workspace_id == workspace_id, first.c.tag == query.include_tags[0], *more)
        return (await conn.execute(stmt)).scalar_one()
    if tags_only and query.exclude_tags and not query.include_tags:
        everything = await _workspace_count(conn, workspace_id)
        tagged = func.count(T.asset_id) if len(query.exclude_tags) == 1 else func.count(func.distinct(T.asset_id))
        excluded = (await conn.execute(select(tagged).where(
            T.workspace_id == workspace_id, T.tag.in_(query.exclude_tags)))).scalar_one()
        return everything - excluded
    if tags_only and not query.include_tags and not query.exclude_tags:
        return await _workspace_count(conn, workspace_id)
    if query.include_tags:
        first = AssetTag.__table__.alias("first_tag")
        stmt = (select(func.count()).select_from(first.join(Asset, A.id == first.c.asset_id))
                .where(first.c.workspace_id == workspace_id, first.c.tag == query.include_tags[0],
                       *_filters(workspace_id, query, skip_first_include=True)))
    else:
        stmt = select(func.count()).select_from(Asset).where(*_filters(workspace_id, query))
    return (await conn.execute(stmt)).scalar_one()


SMALL_MATCH = 5000  # below this many matches, start from the tag's records and sort them


async def page_assets(conn, *, workspace_id: str, query: AssetQuery, page: PageRequest
                      ) -> tuple[list[dict], int]:
    """One page of records (plus one extra to tell has_more) and the total matching."""
    total = await count_assets(conn, workspace_id=workspace_id, query=query)
    if total == 0 or (page.after is None and page.offset >= total):
        return [], total
    column = A[page.sort]
    if query.include_tags and total <= SMALL_MATCH:
        # Few matches: visit only the first tag's records (walking the sort index instead
        # would test every record of the workspace before the page fills).
        first = AssetTag.__table__.alias("first_tag")
        source = first.join(Asset, A.id == first.c.asset_id)
        where = [first.c.workspace_id == workspace_id, first.c.tag == query.include_tags[0],
                 *_filters(workspace_id, query, skip_first_include=True)]
    else:
        source, where = Asset.__table__, _filters(workspace_id, query)
    if page.after is not None:
        value, last_id = page.after
        # A row-value comparison: both databases seek the (sort key, id) index to it.
        key, bound = tuple_(column, A.id), tuple_(literal(value), literal(last_id))
        where.append(key < bound if page.descending else key > bound)
    order = (column.desc(), A.id.desc()) if page.descending else (column.asc(), A.id.asc())
    stmt = select(Asset.__table__).select_from(source).where(*where).order_by(*order).limit(page.limit + 1)
    if page.after is None and page.offset:
        stmt = stmt.offset(page.offset)
    rows = (await conn.execute(stmt)).mappings().all()
    return [dict(r) for r in rows], total


async def tag_histogram(conn, *, workspace_id: str, query: AssetQuery, limit: int) -> dict[str, int]:
    matching = select(A.id).where(*_filters(workspace_id, query))
    count = func.count().label("n")
    rows = await conn.execute(select(T.tag, count).where(
        T.workspace_id == workspace_id, T.asset_id.in_(matching)).group_by(T.tag)
        .order_by(count.desc(), T.tag).limit(limit))
    return {tag: n for tag, n in rows}


async def tag_counts(conn, *, workspace_id: str, prefix: str | None, by_name: bool,
                     offset: int, limit: int) -> tuple[list[tuple[str, int]], int]:
    where = [T.workspace_id == workspace_id]
    if prefix:
        escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(T.tag.like(f"{escaped}%", escape="\\"))
    count = func.count().label("n")
    order = (T.tag.asc(),) if by_name else (count.desc(), T.tag.asc())
    rows = (await conn.execute(select(T.tag, count).where(*where).group_by(T.tag).order_by(*order)
                               .offset(offset).limit(limit))).all()
    total = (await conn.execute(select(func.count(func.distinct(T.tag))).where(*where))).scalar_one()
    return [(tag, n) for tag, n in rows], total
