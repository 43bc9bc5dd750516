"""The one access policy (DOMAIN §1.5): role × action × the organisation of what is touched.

Pure code: no Flask, no database. The web layer turns the logged-in user into a ``Principal`` and
a row into a ``Target`` (``cases.accounts.scope``) and asks ``can(principal, action, target)``.

* An **action** is a verb on a kind of record (``case.read``, ``document.void``...). Every route
  declares exactly one per HTTP method; ``ACTIONS`` is the complete list with Chinese labels.
* A **role** grants actions, each with a **scope**:

  - ``SUBTREE``: records of the user's node and every node below it (the jurisdiction line);
  - ``REFERRED``: records of cases referred to the user's node (partner departments);
  - ``AREA``: records of the node the user's unit serves (its parent) and below — the aggregates a
    department sees of its county;
  - ``INSTALLATION``: only users who hold no node (the system administrator of the installation).

* A user holds one node (``org_path``, "/1/4/") or none (the whole installation) and any number
  of roles; what they may do is the union of what their roles grant.
* A **target** names the nodes a record belongs to (``paths``): a case belongs to its responsible
  unit, its township and the village of the pupil's 户籍, so each of those lines sees it; and the
  nodes a case was referred to (``referred``). A target with no path is the root of the tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Level(IntEnum):
    """How high in the tree a node, a role or an administrator stands (smaller: higher). Roles are
    granted only by an administrator at their level or above (``may_assign``)."""

    INSTALLATION = 0
    PROVINCE = 1
    PREFECTURE = 2
    COUNTY = 3
    TOWNSHIP = 4
    GRASSROOTS = 5  # villages, village groups, schools


LEVEL_LABELS = {Level.INSTALLATION: "全系统", Level.PROVINCE: "省级", Level.PREFECTURE: "市（州）级",
                Level.COUNTY: "县级", Level.TOWNSHIP: "乡镇级", Level.GRASSROOTS: "村、学校级"}

# The level of each organisation kind (``cases.store.models.ORG_KINDS``; a test keeps the two in
# step). A county's education bureau and departments are county-level units, a central school a
# township-level one. A node of a kind not listed here takes the level of its nearest listed
# ancestor (``cases.accounts.service.principal_of``).
KIND_LEVELS: dict[str, Level] = {
    "province": Level.PROVINCE, "prefecture": Level.PREFECTURE, "county": Level.COUNTY,
    "education_bureau": Level.COUNTY, "department": Level.COUNTY, "township": Level.TOWNSHIP,
    "central_school": Level.TOWNSHIP, "village": Level.GRASSROOTS, "village_group": Level.GRASSROOTS,
    "school": Level.GRASSROOTS,
}


class Scope(StrEnum):
    SUBTREE = "subtree"
    REFERRED = "referred"
    AREA = "area"
    INSTALLATION = "installation"


@dataclass(frozen=True)
class Action:
    code: str
    label: str
    write: bool = False


def _actions(*rows: tuple[str, str, bool]) -> dict[str, Action]:
    return {code: Action(code, label, write) for code, label, write in rows}


# Routes everyone may reach without logging in: the health probe, the OpenAPI document, the login
# page. Not a grant: ``requires(PUBLIC)`` on a view skips authentication altogether.
PUBLIC = "public"

ACTIONS: dict[str, Action] = _actions(
    ("account.self", "管理本人账号（密码、两步验证、令牌）", True),
    ("forms.read", "查看表单目录", False),
    ("org.read", "查看机构", False),
    ("org.create", "新建机构", True),
    ("user.read", "查看用户", False),
    ("user.manage", "新建、停用用户", True),
    ("audit.read", "查看审计日志", False),
    ("system.admin", "系统设置（节假日表、时限巡检）", True),
    ("profile.install", "安装地区配置", True),
    ("pupil.read", "查看学生", False),
    ("pupil.create", "登记学生", True),
    ("pupil.unmask", "查看完整身份证号", False),
    ("case.read", "查看案件", False),
    ("case.create", "新建案件", True),
    ("case.act", "办理案件（流转、劝返记录、送达、材料）", True),
    ("case.close", "销号审批", True),
    ("case.refer", "向部门发函", True),
    ("evidence.verify", "核实销号材料", True),
    ("referral.reply", "登记部门回复", True),
    ("inspection.write", "填写督导意见、问题清单", True),
    ("document.read", "查看、下载文书", False),
    ("document.issue", "生成文书", True),
    ("document.void", "作废文书", True),
    ("batch.create", "批量生成文书", True),
    ("job.read", "查看后台任务及结果", False),
    ("upload.create", "上传回收件、扫描件", True),
    ("upload.read", "查看上传件", False),
    ("review.read", "查看复核队列", False),
    ("review.decide", "复核识别结果", True),
    ("attendance.import", "导入考勤", True),
    ("handover.read", "查看整班移交", False),
    ("handover.manage", "组织整班移交（方案、名册、交接表、关闭报到）", True),
    ("handover.register", "登记报到、去向", True),
    ("deadline.read", "查看逾期时限和问题清单", False),
    ("ledger.read", "查看台账", False),
    ("ledger.export", "导出台账、报表", False),
    ("ledger.file", "归档台账、更正", True),
    ("indicator.read", "查看指标和统计表", False),
    ("report.issue", "生成统计表文书", True),
    ("notify.read", "查看消息推送设置和发送记录", False),
    ("notify.manage", "设置单位的消息推送（企业微信、钉钉、邮件）", True),
    ("dossier.read", "下载个案卷宗、查看闭环核查", False),
    ("dossier.verify", "核验卷宗文件", False),
    ("inspection.sample", "随机抽取督查案件", True),
)

S, R, A, I = Scope.SUBTREE, Scope.REFERRED, Scope.AREA, Scope.INSTALLATION


@dataclass(frozen=True)
class Role:
    code: str
    label: str
    grants: Mapping[str, Scope]
    # The level of the units the role is for: only an administrator at this level or above may
    # grant it (the administrator role itself: only the installation's administrator).
    level: Level
    # Offer a TOTP second factor (county-level and administrator accounts, issue 10).
    totp_offered: bool = False
    description: str = ""


def _grant(scope: Scope, actions: Iterable[str]) -> dict[str, Scope]:
    return {a: scope for a in actions}


# What every logged-in user may do whatever their roles: their own account, the form catalogue,
# the organisation tree of their own jurisdiction.
BASELINE: Mapping[str, Scope] = _grant(S, ("account.self", "forms.read", "org.read"))
# Push alerts: county and township offices (and the administrators below the county) set up their
# units' channels; those who follow deadlines see what was sent.
_NOTIFY_MANAGE = ("notify.read", "notify.manage")

_READ_CASES = ("pupil.read", "case.read", "document.read", "job.read", "upload.read")

ROLES: dict[str, Role] = {r.code: r for r in (
    Role("teacher", "班主任/科任教师", _grant(S, (
        *_READ_CASES, "case.create", "case.act", "upload.create", "attendance.import")), level=Level.GRASSROOTS,
         description="本班（本校）学生的考勤、家访和劝返记录"),
    Role("school_clerk", "学校（校长/学籍管理员）", _grant(S, (
        *_READ_CASES, "pupil.create", "pupil.unmask", "case.create", "case.act", "document.issue",
        "document.void", "upload.create", "review.read", "review.decide", "attendance.import",
        "handover.read", "handover.register", "deadline.read", "ledger.read", "ledger.export",
        "ledger.file", "indicator.read")), level=Level.GRASSROOTS,
         description="全校：报告单、学校台账、整班移交名单、回收件上传"),
    Role("central_school", "乡镇中心校", _grant(S, (
        *_READ_CASES, "case.act", "document.issue", "document.void", "batch.create", "upload.create",
        "review.read", "review.decide", "handover.read", "handover.manage", "handover.register",
        "deadline.read", "ledger.read", "ledger.export", "ledger.file", "indicator.read")), level=Level.TOWNSHIP,
         description="本乡镇各校：组织整班移交"),
    Role("village", "村（居）委会", _grant(S, (
        *_READ_CASES, "case.act", "document.issue", "upload.create", "deadline.read", "ledger.read",
        "ledger.export", "ledger.file", "indicator.read")), level=Level.GRASSROOTS,
         description="户籍或居住在本村的适龄儿童：村台账、入户走访"),
    Role("township", "乡镇政府", _grant(S, (
        *_READ_CASES, "pupil.unmask", "case.create", "case.act", "case.refer", "evidence.verify",
        "referral.reply", "document.issue", "document.void", "batch.create", "upload.create",
        "review.read", "review.decide", "handover.read", "deadline.read", "ledger.read", "ledger.export",
        "ledger.file", "indicator.read", *_NOTIFY_MANAGE, "dossier.read")), level=Level.TOWNSHIP,
         description="本乡镇全部儿童和案件：限期返校/敦返复学通知书、联合劝返、乡镇台账"),
    Role("county_bureau", "县教育局/控辍办", _grant(S, (
        *_READ_CASES, "pupil.create", "pupil.unmask", "case.create", "case.act", "case.close", "case.refer",
        "evidence.verify", "referral.reply", "document.issue", "document.void", "batch.create",
        "upload.create", "review.read", "review.decide", "handover.read", "handover.manage",
        "handover.register", "deadline.read", "ledger.read", "ledger.export", "ledger.file",
        "indicator.read", "report.issue", *_NOTIFY_MANAGE, "dossier.read", "dossier.verify",
        "inspection.sample")), level=Level.COUNTY,
         totp_offered=True, description="全县两条线：县台账、部门函件、统计表、整班移交、销号审批"),
    Role("county_gov", "县政府", _grant(S, (
        "document.read", "document.issue", "document.void", "batch.create", "job.read", "handover.read",
        "deadline.read", "ledger.read", "ledger.export", "indicator.read", "notify.read", "dossier.read",
        "dossier.verify")), level=Level.COUNTY,
         totp_offered=True, description="县级看板和台账；县对乡镇、县对部门责任书"),
    Role("department", "联控联保部门", {
        **_grant(R, ("pupil.read", "case.read", "document.read", "pupil.unmask", "referral.reply")),
        **_grant(A, ("indicator.read",))}, level=Level.COUNTY,
         description="只见转给本部门的案件及汇总数据"),
    Role("auditor", "督导/审计", _grant(S, (
        *_READ_CASES, "pupil.unmask", "review.read", "handover.read", "deadline.read", "ledger.read",
        "ledger.export", "indicator.read", "audit.read", "inspection.write", "notify.read", "dossier.read",
        "dossier.verify", "inspection.sample")), level=Level.COUNTY,
         totp_offered=True, description="辖区内全部记录（含作废和历史），只读；只写督导意见"),
    Role("prefecture", "市（州）/省", _grant(S, ("ledger.read", "ledger.export", "indicator.read")),
         level=Level.PREFECTURE, description="本地区汇总数据和台账"),
    Role("admin", "系统管理员", {
        **_grant(S, ("user.read", "user.manage", "org.create", "audit.read", "profile.install", *_NOTIFY_MANAGE)),
        **_grant(I, ("system.admin",))}, level=Level.INSTALLATION,
         totp_offered=True,
         description="为本单位及下级单位开设、停用账号，只授予本级及以下的角色；不删除账号。管理员账号只由全系统的管理员开设"),
)}


@dataclass(frozen=True)
class Principal:
    """Who is asking: the user, their roles and the node they work in (``None``: the whole
    installation). ``area_path`` is the parent of that node (the area a department serves);
    ``level`` the level of that node (``KIND_LEVELS``; ``None`` with a node: unknown, the lowest)."""

    user_id: int
    username: str
    roles: frozenset[str]
    org_id: int | None
    org_path: str | None
    area_path: str | None = None
    level: Level | None = None

    @property
    def installation(self) -> bool:
        return self.org_path is None

    @property
    def scope_level(self) -> Level:
        """The level of the principal's node: the installation's, or (unknown) the lowest."""
        if self.installation:
            return Level.INSTALLATION
        return self.level if self.level is not None else max(Level)


@dataclass(frozen=True)
class Target:
    """The nodes a record belongs to (``paths``) and the nodes it was referred to (``referred``).
    ``Target()`` is the root of the tree (a top-level organisation, a system setting)."""

    paths: tuple[str, ...] = ()
    referred: tuple[str, ...] = field(default=())

    @classmethod
    def org(cls, path: str | None) -> Target:
        return cls(paths=(path,) if path else ())


def within(path: str, scope_path: str | None) -> bool:
    """``path`` is the node ``scope_path`` or below it (``None``: the whole installation)."""
    return scope_path is None or path.startswith(scope_path)


def grants(principal: Principal, action: str) -> frozenset[Scope]:
    """The scopes in which ``principal`` may perform ``action`` (empty: not at all)."""
    if action not in ACTIONS:
        return frozenset()
    scopes = set()
    if action in BASELINE:
        scopes.add(BASELINE[action])
    for code in principal.roles:
        role = ROLES.get(code)
        if role is not None and action in role.grants:
            scopes.add(role.grants[action])
    return frozenset(scopes)


def can(principal: Principal, action: str, target: Target | None = None) -> bool:
    """May ``principal`` perform ``action`` on ``target``? Without a target: on anything at all
    (the route-level check; lists are then filtered by ``cases.accounts.scope.visible``)."""
    scopes = grants(principal, action)
    if target is None:
        return any(s != Scope.INSTALLATION or principal.installation for s in scopes)
    for scope in scopes:
        if scope == Scope.INSTALLATION and principal.installation:
            return True
        if scope == Scope.SUBTREE and _covers(target.paths, principal.org_path):
            return True
        if scope == Scope.AREA and _covers(target.paths, principal.area_path):
            return True
        if scope == Scope.REFERRED and any(within(p, principal.org_path) for p in target.referred):
            return True
    return False


def _covers(paths: tuple[str, ...], scope_path: str | None) -> bool:
    if not paths:  # the root: only for the whole installation
        return scope_path is None
    return any(within(p, scope_path) for p in paths)


def may_grant(principal: Principal, role: str) -> bool:
    """May ``principal`` give ``role`` to anyone at all (the role picker of the admin page)?"""
    return role in ROLES and can(principal, "user.manage") and _level_refusal(principal, ROLES[role]) is None


def _level_refusal(principal: Principal, role: Role) -> str | None:
    if role.level == Level.INSTALLATION and not principal.installation:
        return f"不能授予“{role.label}”角色：管理员账号只能由全系统的管理员开设"
    if role.level < principal.scope_level:
        return (f"不能授予“{role.label}”角色：该角色属于{LEVEL_LABELS[role.level]}，"
                f"高于您的管理范围（{LEVEL_LABELS[principal.scope_level]}）")
    return None


def may_assign(principal: Principal, role: str, org_path: str | None) -> str | None:
    """Why ``principal`` may not give ``role`` to a user at ``org_path`` (None: they may).

    An administrator gives only roles at their own level or below (``Role.level`` against the
    level of their node: a county's administrator no 市（州） role), only to accounts at their own
    node and below, and the administrator role only when they administer the whole installation
    (no one makes a peer or a superior administrator). The message names the role and why."""
    if role not in ROLES:
        return f"角色“{role}”不存在"
    why = _level_refusal(principal, ROLES[role])
    if why:
        return why
    if not can(principal, "user.manage", Target.org(org_path)):
        return f"不能授予“{ROLES[role].label}”角色：只能为本单位及下级单位开设账号"
    return None


# Organisations under which no other organisation is placed, and those that may stand at the top
# of a tree (an installation serves a province, a prefecture or a county).
LEAF_KINDS = frozenset({"school", "village_group"})
TOP_KINDS = frozenset({"province", "prefecture", "county"})


def may_place(kind: str, parent_kind: str | None, label: Callable[[str], str] = str) -> str | None:
    """Why an organisation of ``kind`` may not be placed under one of ``parent_kind`` (None: at
    the top), or None when it may. A node stands no higher than its parent (``KIND_LEVELS``: a
    county under a township, or a township under a village, is refused; a county's education
    bureau under the county, a central school under its township and a village group under its
    village are at their parent's level or below), a school or village group has no organisations
    under it, and only a province, prefecture or county stands at the top. ``label`` names a kind
    as people read it."""
    if kind not in KIND_LEVELS:
        return f"机构类型“{kind}”不存在，可选：" + "、".join(label(k) for k in KIND_LEVELS)
    if parent_kind is None:
        if kind not in TOP_KINDS:
            return f"{label(kind)}须有上级机构（只有省、市（州）、县可作为最高一级）"
        return None
    if parent_kind in LEAF_KINDS:
        return f"{label(parent_kind)}之下不能再设机构"
    if KIND_LEVELS[kind] < KIND_LEVELS.get(parent_kind, Level.GRASSROOTS):
        return f"{label(kind)}（{LEVEL_LABELS[KIND_LEVELS[kind]]}）不能设在{label(parent_kind)}之下"
    return None


def allowed_actions(principal: Principal) -> list[str]:
    """Every action ``principal`` may perform somewhere (for ``GET /me`` and menus)."""
    return [a for a in ACTIONS if can(principal, a)]


def role_labels(codes: Iterable[str]) -> list[str]:
    return [ROLES[c].label for c in codes if c in ROLES]
