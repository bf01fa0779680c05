"""A deterministic sample law-firm workspace for demos, plus a plan that tidies one case.

``build_sample_workspace(root)`` lays out a small but realistic firm share::

    projects/<Case>/...        four matters; the first (DEMO_CASE) is a mess of loose scans
    Tools/                     the firm's home-grown helper scripts
    Database/clients.csv       the client list
    Reports/<Case>/            a report generated for one matter

``sample_reorganisation()`` returns the JSON plan (a plain dict) a careful paralegal
would submit to file DEMO_CASE properly.

Everything is fictional (names, claim numbers, ``.example`` addresses, 555-01xx phone
numbers) and byte-for-byte deterministic; only the standard library is used.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import html
import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["DEMO_CASE", "build_sample_workspace", "sample_reorganisation"]

DEMO_CASE: str = "Abby-Sitgraves-MVA-7-13-2024"

_FIRM = "Kessler & Dunn, PLLC"
_FIRM_ADDRESS = "410 Harbor Street, Suite 300, Riverton, ST 40112"
_ATTORNEY = "Jordan Kessler, Esq."
_PATIENT = "SITGRAVES, ABBY"
_DOB = "03/22/1988"
_CLAIM = "SMI-44-81920"


# --------------------------------------------------------------------------- file formats


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _pdf(title: str, lines: Sequence[str], producer: str = "ScanSnap Manager #S1300i") -> bytes:
    """A small, valid one-page PDF 1.4 whose text is stored uncompressed (greppable)."""
    ops = ["BT", "/F1 10 Tf", "14 TL", "56 750 Td"]
    ops += [f"({_pdf_escape(line)}) Tj T*" for line in lines]
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    info = f"<< /Title ({_pdf_escape(title)}) /Producer ({_pdf_escape(producer)}) >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        info.encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


_DOCX_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)


def _docx(paragraphs: Sequence[str], saved: dt.date) -> bytes:
    """A minimal but valid Word document (zip) with a fixed timestamp, so it is reproducible."""
    body = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{html.escape(p, quote=False)}</w:t></w:r></w:p>'
        for p in paragraphs
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    buffer = io.BytesIO()
    stamp = (saved.year, saved.month, saved.day, 9, 0, 0)
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (
            ("[Content_Types].xml", _DOCX_CONTENT_TYPES),
            ("_rels/.rels", _DOCX_RELS),
            ("word/document.xml", document),
        ):
            member = zipfile.ZipInfo(name, date_time=stamp)
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, text.encode("utf-8"))
    return buffer.getvalue()


def _filler(label: str, size: int) -> bytes:
    """Deterministic high-entropy bytes, standing in for compressed image data."""
    out = bytearray()
    block = hashlib.sha256(label.encode("utf-8")).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def _jpeg(caption: str, size: int) -> bytes:
    """JPEG-looking bytes: SOI, a JFIF header, a comment segment, filler, EOI."""
    comment = caption.encode("utf-8")
    header = (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
        + b"\xff\xfe"
        + (len(comment) + 2).to_bytes(2, "big")
        + comment
    )
    return header + _filler(caption, size) + b"\xff\xd9"


def _text(lines: Sequence[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def _thumbs_db() -> bytes:
    """An OLE2 compound-file header (what Windows' thumbnail cache is) plus filler."""
    header = b"".join(
        [
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # OLE2 signature
            bytes(16),  # CLSID
            (0x3E).to_bytes(2, "little") + (3).to_bytes(2, "little"),  # version 3.62
            b"\xfe\xff",  # byte order
            (9).to_bytes(2, "little") + (6).to_bytes(2, "little"),  # 512 / 64-byte sectors
            bytes(6),
            (0).to_bytes(4, "little") + (1).to_bytes(4, "little"),  # dir / FAT sector counts
            (1).to_bytes(4, "little") + bytes(4),  # first directory sector, transaction
            (4096).to_bytes(4, "little"),  # mini stream cutoff
            b"\xfe\xff\xff\xff" + bytes(4) + b"\xfe\xff\xff\xff" + bytes(4),
        ]
    )
    return header.ljust(512, b"\xff") + _filler("Thumbs.db", 2560)


_DESKTOP_INI = (
    b"[.ShellClassInfo]\r\nIconResource=C:\\Windows\\System32\\imageres.dll,-3\r\n"
    b"[ViewState]\r\nMode=\r\nVid=\r\nFolderType=Documents\r\n"
)


def _word_owner_file(user: str) -> bytes:
    """The hidden ``~$...`` lock file Word leaves behind (162 bytes)."""
    name = user.encode("ascii")
    return (bytes([len(name)]) + name.ljust(53, b" ") + user.encode("utf-16-le")).ljust(162, b"\0")


# --------------------------------------------------------------------------- the demo case


@dataclass(frozen=True, slots=True)
class _DemoItem:
    source: str  # messy name, flat at the case root
    content: bytes
    scanned: dt.date  # file modification date
    destination: str | None  # None: delete it
    note: str  # one line for INDEX.md


_MERCY = "Medical Records/Mercy Hospital ER"
_PATEL = "Medical Records/Dr Anita Patel Orthopedics"
_IMAGING = "Medical Records/City Imaging Center"
_LAKESIDE = "Medical Records/Lakeside Physical Therapy"

# mkdir order: parents first; also the order sections appear in INDEX.md.
_DEMO_FOLDERS: tuple[str, ...] = (
    "Medical Records",
    _MERCY,
    _PATEL,
    _IMAGING,
    _LAKESIDE,
    "Police Report",
    "Photos",
    "Correspondence",
    "Bills",
)


def _record(provider: str, address: str, service: str, dos: str, body: Sequence[str]) -> list[str]:
    return [
        provider.upper(),
        address,
        "",
        "CONFIDENTIAL - PROTECTED HEALTH INFORMATION",
        f"Patient: {_PATIENT}    DOB: {_DOB}    MRN: 00481-2207",
        f"Date of service: {dos}    {service}",
        "",
        *body,
    ]


def _bill(
    provider: str, address: str, statement: str, rows: Sequence[tuple[str, str, str, int]]
) -> list[str]:
    lines = [
        provider.upper(),
        address,
        "",
        "PATIENT STATEMENT - CONFIDENTIAL",
        f"Statement date: {statement}    Account: {_PATIENT}    Guarantor: Abby Sitgraves",
        f"Insurance on file: Bayview Auto Insurance (MedPay)    Claim: {_CLAIM}",
        "",
        "DOS         CPT     Description                                   Charge",
    ]
    total = 0
    for dos, cpt, desc, cents in rows:
        total += cents
        lines.append(f"{dos}  {cpt}   {desc:<44}  ${cents / 100:>9,.2f}")
    lines += [
        "",
        f"{'Total charges:':<66}${total / 100:>9,.2f}",
        f"{'Payments/adjustments:':<66}${0:>9,.2f}",
        f"{'BALANCE DUE:':<66}${total / 100:>9,.2f}",
        "",
        "Questions? Call Patient Accounts at 555-0143.",
    ]
    return lines


def _letter(date: str, to: Sequence[str], re: str, body: Sequence[str], sign: str) -> list[str]:
    return [
        _FIRM,
        _FIRM_ADDRESS,
        "Tel. 555-0100    jkessler@kesslerdunn.example",
        "",
        date,
        "",
        *to,
        "",
        f"Re: {re}",
        "",
        *body,
        "",
        "Sincerely,",
        "",
        sign,
    ]


def _mercy_er_visit() -> bytes:
    lines = _record(
        "Mercy Hospital - Emergency Department",
        "1200 Mercy Way, Riverton, ST 40110",
        "Attending: Samuel Ortiz, MD",
        "07/13/2024",
        [
            "Arrival: 16:42 by private vehicle    Triage ESI: 3",
            "Chief complaint: neck pain, low back pain, left shoulder pain after MVC.",
            "HPI: 36 y/o F restrained driver, rear-ended at stoplight (Route 9 / Elm St).",
            "  No LOC. Airbags not deployed. Ambulatory at scene.",
            "Exam: paraspinal tenderness C5-C7 and L4-S1; ecchymosis L anterior shoulder.",
            "  Neuro intact. FROM of shoulder with pain at end range.",
            "Imaging: XR cervical spine 3 views - no acute fracture or malalignment.",
            "",
            "Diagnoses (ICD-10-CM):",
            "  S13.4XXA  Sprain of ligaments of cervical spine, initial encounter",
            "  S33.5XXA  Sprain of ligaments of lumbar spine, initial encounter",
            "  S40.012A  Contusion of left shoulder, initial encounter",
            "  V43.52XA  Car driver injured in collision with car in traffic accident",
            "Procedures (CPT): 99284 ED visit, high complexity; 72040 XR spine cervical 2-3 views",
            "Disposition: discharged home 19:05 in stable condition.",
            "",
            "Electronically signed: Samuel Ortiz, MD  07/13/2024 19:12",
        ],
    )
    return _pdf("Mercy ED record 07-13-2024", lines)


def _mercy_discharge() -> bytes:
    lines = _record(
        "Mercy Hospital - Emergency Department",
        "1200 Mercy Way, Riverton, ST 40110",
        "DISCHARGE INSTRUCTIONS",
        "07/13/2024",
        [
            "You were seen today for: neck strain, low back strain, bruised left shoulder.",
            "",
            "Medications prescribed:",
            "  Cyclobenzaprine 5 mg - 1 tab by mouth at bedtime as needed for spasm (#15)",
            "  Ibuprofen 600 mg - 1 tab by mouth every 8 hours with food (#30)",
            "",
            "Follow up: orthopedics within 7-10 days (referral: Dr. Anita Patel, 555-0172).",
            "Return to the ED for numbness, weakness, loss of bladder/bowel control,",
            "  or severe worsening pain.",
            "Work note: no lifting over 10 lb for 7 days.",
            "",
            "Patient signature: ____________________    Nurse: L. Brandt, RN",
        ],
    )
    return _pdf("Discharge instructions", lines, producer="Canon DR-C225 II")


def _mercy_results() -> bytes:
    lines = _record(
        "Mercy Hospital - Laboratory and Radiology",
        "1200 Mercy Way, Riverton, ST 40110",
        "Results report (page 2 of 2)",
        "07/13/2024",
        [
            "RADIOLOGY REPORT - XR CERVICAL SPINE, 3 VIEWS (CPT 72040)",
            "Indication: neck pain after motor vehicle collision.",
            "Findings: vertebral body heights maintained. Straightening of the normal",
            "  cervical lordosis, which may reflect muscle spasm. No prevertebral swelling.",
            "Impression: no acute fracture or subluxation.",
            "Read by: Helen Marsh, MD (Radiology)  07/13/2024 18:20",
            "",
            "LABORATORY",
            "  Urine hCG (CPT 81025) ........ NEGATIVE",
            "  Urinalysis (CPT 81003) ....... no blood detected",
        ],
    )
    return _pdf("Mercy results pt2", lines)


def _patel_consult() -> bytes:
    lines = _record(
        "Anita Patel, MD - Orthopedics and Sports Medicine",
        "88 Lakeview Drive, Suite 210, Riverton, ST 40111    Tel. 555-0172",
        "NEW PATIENT CONSULTATION",
        "07/22/2024",
        [
            "Referred by: Mercy Hospital ED.   Mechanism: rear-end MVC on 07/13/2024.",
            "Complaints: neck pain 6/10 radiating to L trapezius; low back pain 7/10",
            "  with intermittent tingling L lateral thigh; L shoulder soreness improving.",
            "Exam: cervical ROM reduced ~30% in rotation; lumbar flexion 50 deg with pain;",
            "  SLR negative bilaterally; strength 5/5; reflexes 2+ symmetric.",
            "",
            "Assessment (ICD-10-CM): S13.4XXA; S33.5XXA; M54.50 low back pain;",
            "  S40.012D contusion L shoulder, subsequent encounter.",
            "Plan: physical therapy 2-3x/week for 6 weeks (Lakeside PT);",
            "  MRI lumbar and cervical spine without contrast (City Imaging Center);",
            "  continue NSAIDs; off work 2 weeks; return in 4 weeks.",
            "Billing: CPT 99204 new patient office visit.",
            "",
            "Anita Patel, MD (electronically signed 07/22/2024)",
        ],
    )
    return _pdf("Patel ortho consult", lines, producer="Microsoft: Print To PDF")


def _patel_followup() -> bytes:
    lines = _record(
        "Anita Patel, MD - Orthopedics and Sports Medicine",
        "88 Lakeview Drive, Suite 210, Riverton, ST 40111    Tel. 555-0172",
        "FOLLOW-UP VISIT",
        "08/19/2024",
        [
            "Interval history: attending PT; neck pain 4/10, low back pain 6/10.",
            "MRI lumbar 08/05/2024: 3 mm broad-based disc protrusion L4-L5 with mild",
            "  L lateral recess narrowing. MRI cervical 08/12/2024: mild C5-C6 bulge.",
            "Assessment (ICD-10-CM): M51.26 other intervertebral disc displacement,",
            "  lumbar region; S13.4XXD; S33.5XXD.",
            "Plan: continue PT 6 more weeks; home exercise program; consider L4-L5",
            "  epidural steroid injection if no improvement by next visit.",
            "  Light duty, no lifting over 20 lb. Return in 6 weeks.",
            "Billing: CPT 99214 established patient office visit.",
            "",
            "Anita Patel, MD (electronically signed 08/19/2024)",
        ],
    )
    return _pdf("Patel ortho follow-up", lines, producer="Microsoft: Print To PDF")


def _imaging_report(dos: str, study: str, cpt: str, findings: Sequence[str]) -> bytes:
    lines = _record(
        "City Imaging Center",
        "5 Commerce Park, Riverton, ST 40113    Tel. 555-0188",
        f"{study} (CPT {cpt})",
        dos,
        [
            "Ordering physician: Anita Patel, MD",
            "Clinical history: neck/back pain following motor vehicle collision 07/13/2024.",
            "Technique: multiplanar multisequence MRI without IV contrast. 1.5T.",
            "",
            "FINDINGS:",
            *findings,
            "",
            "Interpreting radiologist: Victor Huang, MD    Signed " + dos,
        ],
    )
    return _pdf(study, lines)


def _pt_eval() -> bytes:
    lines = _record(
        "Lakeside Physical Therapy",
        "230 Shoreline Ave, Riverton, ST 40114    Tel. 555-0155",
        "INITIAL EVALUATION",
        "09/03/2024",
        [
            "Referral: Anita Patel, MD.  Dx: S13.4XXD, S33.5XXD, M51.26.",
            "Subjective: pain with sitting > 30 min, driving, lifting laundry basket.",
            "Objective: cervical rotation R 50 / L 45 deg; lumbar flexion 55 deg;",
            "  Oswestry Disability Index 38% (moderate); NDI 28%.",
            "Assessment: impairments consistent with post-MVC cervical/lumbar strain.",
            "Plan: 2x/week x 8 weeks: therapeutic exercise, manual therapy,",
            "  neuromuscular re-education, home exercise program.",
            "Billing (CPT): 97161 PT evaluation, low complexity; 97110 x1; 97140 x1.",
            "",
            "Therapist: Rachel Dominguez, PT, DPT",
        ],
    )
    return _pdf("Lakeside PT initial evaluation", lines)


def _pt_notes() -> bytes:
    visits = [
        ("09/05/2024", "97110 x2, 97140 x1", "4/10 neck, 6/10 back"),
        ("09/10/2024", "97110 x2, 97112 x1", "4/10 neck, 5/10 back"),
        ("09/17/2024", "97110 x2, 97140 x1", "3/10 neck, 5/10 back"),
        ("09/24/2024", "97110 x2, 97112 x1", "3/10 neck, 5/10 back"),
        ("10/01/2024", "97110 x2, 97140 x1", "3/10 neck, 4/10 back"),
        ("10/08/2024", "97110 x2, 97112 x1", "2/10 neck, 4/10 back"),
        ("10/15/2024", "97110 x2, 97140 x1", "2/10 neck, 4/10 back (re-assessment)"),
    ]
    lines = _record(
        "Lakeside Physical Therapy",
        "230 Shoreline Ave, Riverton, ST 40114    Tel. 555-0155",
        "DAILY NOTES / PROGRESS REPORT",
        "09/05/2024 - 10/15/2024",
        [f"{d}  CPT {codes:<20} Pain: {pain}" for d, codes, pain in visits],
    )
    lines += [
        "",
        "Progress (10/15/2024): Oswestry 38% -> 24%; NDI 28% -> 14%.",
        "Continued deficits in lumbar endurance; recommend 4 more weeks.",
        "Therapist: Rachel Dominguez, PT, DPT",
    ]
    return _pdf("PT notes", lines)


def _police_report() -> bytes:
    lines = [
        "RIVERTON POLICE DEPARTMENT - STATE UNIFORM CRASH REPORT",
        "Report No. RPD-2024-071312    Date of crash: 07/13/2024    Time: 16:05",
        "Location: Route 9 at Elm Street, Riverton    Weather: clear    Road: dry",
        "",
        "Unit 1: 2019 Honda Civic, driver SITGRAVES, ABBY, stopped for red signal.",
        "  Insurer: Bayview Auto Insurance.  Damage: rear bumper, trunk lid (moderate).",
        "Unit 2: 2021 Ford F-150, driver HOLLIS, TREVOR.",
        "  Insurer: Statewide Mutual Insurance, policy SM-7730412.  Damage: front.",
        "",
        "Narrative: Unit 2 failed to stop and struck Unit 1 from behind while Unit 1",
        "  was stationary at the signal. Driver 2 stated he 'looked down at his",
        "  phone for a second'. Witness W1 (R. Castillo) corroborates.",
        "Contributing factor (Unit 2): following too closely / driver inattention.",
        "Citation issued to Driver 2: RCC 46.61.145 (following too closely).",
        "Injuries: Driver 1 complained of neck pain; declined EMS transport.",
        "",
        "Investigating officer: Ofc. D. Marlowe #2231    Approved: Sgt. K. Reyes",
        "FINAL",
    ]
    return _pdf("Crash report RPD-2024-071312", lines, producer="RPD Records Management")


def _witness_statement() -> bytes:
    lines = [
        "RIVERTON POLICE DEPARTMENT - SUPPLEMENTAL REPORT / WITNESS STATEMENT",
        "Case No. RPD-2024-071312    Supplement 1    Date taken: 07/20/2024",
        "",
        "Witness: Rosa Castillo (contact on file with RPD)",
        "Statement: I was stopped in the left lane next to the small gray car.",
        "  The light was red. The pickup behind it never slowed down and hit the",
        "  car hard enough to push it into the crosswalk. The pickup driver got",
        "  out holding his phone and said he was sorry, he didn't see her.",
        "",
        "I declare the above is true and correct.   /s/ Rosa Castillo",
        "Taken by: Ofc. D. Marlowe #2231",
    ]
    return _pdf("Supplemental witness statement", lines)


def _intake_notes() -> bytes:
    return _text(
        [
            "Call w/ Abby Sitgraves 7/16/24 10:30am  (PN)",
            "",
            "- rear ended 7/13 ~4pm Rt 9 & Elm, she was stopped at red light",
            "- other driver Trevor Hollis, F-150, ins = Statewide Mutual (pol SM-7730412)",
            "- police came, report # RPD-2024-071312, other guy got ticket",
            "- went to Mercy ER same night, xrays neg, neck + low back + L shoulder",
            "- her ins = Bayview Auto, has MedPay $5k",
            "- works as dental hygienist, missed 3 shifts so far",
            "- has photos of car + intersection on her phone, will email",
            "- witness lady gave her number (Rosa?) - told police too",
            "- TODO: LOR to Statewide, MedPay claim to Bayview, records req Mercy,",
            "  get her set up w/ ortho (ER referred to Dr Patel)",
            "- signed fee agreement via DocuSign 7/16",
        ]
    )


def _records_request() -> bytes:
    return _docx(
        _letter(
            "July 24, 2024",
            [
                "Mercy Hospital",
                "Attn: Health Information Management",
                "1200 Mercy Way",
                "Riverton, ST 40110",
            ],
            f"Request for records and itemized bill - Patient: Abby Sitgraves, DOB {_DOB}",
            [
                "Dear Custodian of Records:",
                "This office represents Ms. Sitgraves for injuries sustained in a motor "
                "vehicle collision on July 13, 2024. Enclosed is a HIPAA-compliant "
                "authorization signed by our client.",
                "Please provide complete certified copies of all emergency department "
                "records, radiology images and reports, laboratory results, and an "
                "itemized bill with CPT codes for date of service July 13, 2024.",
                "Please contact our office at 555-0100 with any fees in advance.",
            ],
            _ATTORNEY,
        ),
        dt.date(2024, 7, 24),
    )


def _letter_of_representation() -> bytes:
    return _docx(
        _letter(
            "August 2, 2024",
            [
                "Statewide Mutual Insurance",
                "Bodily Injury Claims",
                "PO Box 5500",
                "Capital City, ST 40001",
            ],
            f"Your insured: Trevor Hollis / Claimant: Abby Sitgraves / Claim {_CLAIM} / "
            "Date of loss: 07/13/2024",
            [
                "Dear Claims Representative:",
                "Please be advised that this firm represents Abby Sitgraves for all "
                "claims arising from the collision of July 13, 2024. Direct all further "
                "communication regarding this claim to this office; do not contact our "
                "client directly.",
                "Please provide the declarations page and policy limits for all "
                "coverage applicable to your insured, and preserve all photographs, "
                "recorded statements and vehicle data related to this loss.",
            ],
            _ATTORNEY,
        ),
        dt.date(2024, 8, 2),
    )


def _medpay_letter() -> bytes:
    return _docx(
        _letter(
            "August 16, 2024",
            [
                "Bayview Auto Insurance",
                "Medical Payments Unit",
                "77 Bayview Plaza",
                "Riverton, ST 40115",
            ],
            "Your insured: Abby Sitgraves / Policy BV-2213098 / MedPay claim / DOL 07/13/2024",
            [
                "Dear MedPay Adjuster:",
                "We represent your insured regarding injuries from the above collision "
                "and hereby open a claim under her Medical Payments coverage ($5,000).",
                "Enclosed are the Mercy Hospital ER records and itemized bill. Please "
                "issue payment directly to the provider and send a copy of the "
                "explanation of benefits to this office.",
            ],
            _ATTORNEY,
        ),
        dt.date(2024, 8, 16),
    )


def _adjuster_email() -> bytes:
    return _text(
        [
            'From: "Karen Whitfield" <kwhitfield@statewidemutual.example>',
            'To: "Jordan Kessler" <jkessler@kesslerdunn.example>',
            f"Subject: RE: Claim {_CLAIM} / Insd: Hollis / Clmt: Sitgraves",
            "Date: Fri, 09 Aug 2024 14:22:05 -0500",
            "Message-ID: <20240809192205.4471@statewidemutual.example>",
            "MIME-Version: 1.0",
            'Content-Type: text/plain; charset="utf-8"',
            "",
            "Mr. Kessler,",
            "",
            "We acknowledge receipt of your letter of representation dated 8/2/2024.",
            "Liability has been accepted at 100% on this claim. Our insured's policy",
            "carries bodily injury limits of $100,000 per person.",
            "",
            "Please forward medical specials and records when your client has",
            "completed treatment. Let me know if you would like to schedule a",
            "property damage inspection of her vehicle.",
            "",
            "Karen Whitfield",
            "Senior Bodily Injury Adjuster, Statewide Mutual Insurance",
            "555-0161",
        ]
    )


def _defense_letter() -> bytes:
    lines = [
        "HARLAN & VOSS LLP",
        "900 Main Street, 12th Floor, Capital City, ST 40002    Tel. 555-0190",
        "",
        "October 1, 2024",
        "",
        f"{_ATTORNEY}",
        _FIRM,
        _FIRM_ADDRESS,
        "",
        f"Re: Sitgraves v. Hollis (pre-suit) - Statewide Mutual claim {_CLAIM}",
        "",
        "Dear Mr. Kessler:",
        "Statewide Mutual has retained this firm to represent Mr. Hollis. Please",
        "direct future correspondence to me. While liability is not in dispute,",
        "we question the causal relationship between the collision and the L4-L5",
        "findings on the 08/05/2024 MRI. Please provide any prior records of",
        "back complaints for the five years preceding the collision.",
        "",
        "We are open to discussing early resolution once treatment concludes.",
        "",
        "Very truly yours,",
        "Meredith Voss",
        "",
        "cc: Karen Whitfield, Statewide Mutual Insurance",
    ]
    return _pdf("Letter from Harlan & Voss", lines, producer="Harlan & Voss DMS")


@functools.cache
def _demo_items() -> tuple[_DemoItem, ...]:
    d = dt.date
    er_discharge = _mercy_discharge()
    items = [
        # --- medical records
        _DemoItem(
            "SCAN_20240714_0001.pdf",
            _mercy_er_visit(),
            d(2024, 7, 14),
            f"{_MERCY}/2024-07-13 ER visit.pdf",
            "ED record: neck/back sprain, L shoulder contusion (CPT 99284, 72040)",
        ),
        _DemoItem(
            "SCAN_20240714_0002.pdf",
            er_discharge,
            d(2024, 7, 14),
            f"{_MERCY}/2024-07-13 ER discharge instructions.pdf",
            "Discharge instructions, prescriptions, ortho referral",
        ),
        _DemoItem(
            "Mercy Hosp records pt2.pdf",
            _mercy_results(),
            d(2024, 7, 29),
            f"{_MERCY}/2024-07-13 ER x-ray and lab results.pdf",
            "Cervical x-ray report (no fracture) and labs",
        ),
        _DemoItem(
            "medical records - dr patel ortho.pdf",
            _patel_consult(),
            d(2024, 7, 23),
            f"{_PATEL}/2024-07-22 initial orthopedic consult.pdf",
            "New patient consult; PT and MRI ordered (CPT 99204)",
        ),
        _DemoItem(
            "patel followup aug.pdf",
            _patel_followup(),
            d(2024, 8, 20),
            f"{_PATEL}/2024-08-19 orthopedic follow-up.pdf",
            "Follow-up; L4-L5 protrusion (M51.26), ESI considered (CPT 99214)",
        ),
        _DemoItem(
            "MRI lumbar.pdf",
            _imaging_report(
                "08/05/2024",
                "MRI LUMBAR SPINE WITHOUT CONTRAST",
                "72148",
                [
                    "  L4-L5: 3 mm broad-based disc protrusion with mild left lateral",
                    "  recess narrowing. No central canal stenosis.",
                    "  L5-S1: mild facet arthropathy. Conus terminates normally.",
                    "IMPRESSION: L4-L5 disc protrusion as described.",
                ],
            ),
            d(2024, 8, 6),
            f"{_IMAGING}/2024-08-05 MRI lumbar spine.pdf",
            "MRI lumbar: 3 mm L4-L5 disc protrusion (CPT 72148)",
        ),
        _DemoItem(
            "scan0011.pdf",
            _imaging_report(
                "08/12/2024",
                "MRI CERVICAL SPINE WITHOUT CONTRAST",
                "72141",
                [
                    "  C5-C6: mild disc bulge without cord compression.",
                    "  Straightening of cervical lordosis. No fracture or edema.",
                    "IMPRESSION: mild C5-C6 disc bulge; no acute osseous injury.",
                ],
            ),
            d(2024, 8, 14),
            f"{_IMAGING}/2024-08-12 MRI cervical spine.pdf",
            "MRI cervical: mild C5-C6 bulge (CPT 72141)",
        ),
        _DemoItem(
            "SCAN_20240903_0007.pdf",
            _pt_eval(),
            d(2024, 9, 3),
            f"{_LAKESIDE}/2024-09-03 PT initial evaluation.pdf",
            "PT evaluation; 2x/week for 8 weeks (CPT 97161)",
        ),
        _DemoItem(
            "PT notes sept-oct.pdf",
            _pt_notes(),
            d(2024, 10, 16),
            f"{_LAKESIDE}/2024-10-15 PT progress notes Sep-Oct.pdf",
            "Seven visits 09/05-10/15 and progress re-assessment",
        ),
        # --- police report
        _DemoItem(
            "Police Report FINAL final.pdf",
            _police_report(),
            d(2024, 7, 19),
            "Police Report/2024-07-13 Riverton PD crash report.pdf",
            "Crash report RPD-2024-071312; Hollis cited for following too closely",
        ),
        _DemoItem(
            "SCAN_20240722_0003.pdf",
            _witness_statement(),
            d(2024, 7, 22),
            "Police Report/2024-07-20 supplemental witness statement.pdf",
            "Witness Rosa Castillo's statement",
        ),
        # --- photos
        _DemoItem(
            "IMG_4471.JPG",
            _jpeg("Abby Sitgraves - rear bumper damage 07/13/2024", 41_000),
            d(2024, 7, 13),
            "Photos/2024-07-13 rear bumper damage.jpg",
            "Client's Honda Civic at the scene",
        ),
        _DemoItem(
            "IMG_4472.JPG",
            _jpeg("Route 9 and Elm St intersection 07/13/2024", 38_500),
            d(2024, 7, 13),
            "Photos/2024-07-13 intersection Route 9 and Elm St.jpg",
            "Scene: signal and lane positions",
        ),
        _DemoItem(
            "IMG_4490.jpg",
            _jpeg("Left shoulder bruising 07/15/2024", 29_750),
            d(2024, 7, 15),
            "Photos/2024-07-15 bruising left shoulder.jpg",
            "Injury photo two days after the crash",
        ),
        # --- correspondence
        _DemoItem(
            "notes from call w client.txt",
            _intake_notes(),
            d(2024, 7, 16),
            "Correspondence/2024-07-16 client intake call notes.txt",
            "Intake call: facts, insurers, witness, to-dos",
        ),
        _DemoItem(
            "records request mercy.docx",
            _records_request(),
            d(2024, 7, 24),
            "Correspondence/2024-07-24 records request to Mercy Hospital.docx",
            "HIPAA records and itemized bill request",
        ),
        _DemoItem(
            "letter to ins co 8-2.docx",
            _letter_of_representation(),
            d(2024, 8, 2),
            "Correspondence/2024-08-02 letter of representation to Statewide Mutual.docx",
            "Letter of representation and preservation request",
        ),
        _DemoItem(
            f"Re_ claim {_CLAIM}.eml",
            _adjuster_email(),
            d(2024, 8, 9),
            "Correspondence/2024-08-09 email from Statewide Mutual adjuster.eml",
            "Liability accepted 100%; $100,000 BI limits",
        ),
        _DemoItem(
            "medpay ltr bayview.docx",
            _medpay_letter(),
            d(2024, 8, 16),
            "Correspondence/2024-08-16 MedPay claim letter to Bayview Auto Insurance.docx",
            "Opens $5,000 MedPay claim with client's own insurer",
        ),
        _DemoItem(
            "opp counsel ltr.pdf",
            _defense_letter(),
            d(2024, 10, 3),
            "Correspondence/2024-10-01 letter from Harlan & Voss (defense counsel).pdf",
            "Defense appears; disputes causation of L4-L5 findings",
        ),
        # --- bills
        _DemoItem(
            "Mercy bill.pdf",
            _pdf(
                "Mercy statement",
                _bill(
                    "Mercy Hospital Patient Financial Services",
                    "1200 Mercy Way, Riverton, ST 40110",
                    "07/31/2024",
                    [
                        ("07/13/2024", "99284", "ED visit, high complexity", 184_500),
                        ("07/13/2024", "72040", "XR spine cervical 2-3 views", 41_200),
                        ("07/13/2024", "81025", "Urine pregnancy test", 6_800),
                        ("07/13/2024", "81003", "Urinalysis, automated", 4_900),
                    ],
                ),
            ),
            d(2024, 8, 1),
            "Bills/2024-07-13 Mercy Hospital ER bill.pdf",
            "ER charges $2,374.00",
        ),
        _DemoItem(
            "City imaging bill.pdf",
            _pdf(
                "City Imaging invoice",
                _bill(
                    "City Imaging Center",
                    "5 Commerce Park, Riverton, ST 40113",
                    "08/20/2024",
                    [
                        ("08/05/2024", "72148", "MRI lumbar spine w/o contrast", 215_000),
                        ("08/12/2024", "72141", "MRI cervical spine w/o contrast", 205_000),
                    ],
                ),
            ),
            d(2024, 8, 21),
            "Bills/2024-08-12 City Imaging Center bill.pdf",
            "Both MRIs $4,200.00",
        ),
        _DemoItem(
            "SCAN_20240920_0014.pdf",
            _pdf(
                "Patel statement",
                _bill(
                    "Anita Patel, MD - Orthopedics",
                    "88 Lakeview Drive, Suite 210, Riverton, ST 40111",
                    "09/15/2024",
                    [
                        ("07/22/2024", "99204", "New patient office visit", 42_500),
                        ("08/19/2024", "99214", "Established patient visit", 24_500),
                    ],
                ),
            ),
            d(2024, 9, 20),
            "Bills/2024-08-19 Dr Anita Patel Orthopedics statement.pdf",
            "Ortho visits $670.00",
        ),
        _DemoItem(
            "lakeside pt invoice.pdf",
            _pdf(
                "Lakeside PT invoice",
                _bill(
                    "Lakeside Physical Therapy",
                    "230 Shoreline Ave, Riverton, ST 40114",
                    "10/15/2024",
                    [
                        ("09/03/2024", "97161", "PT evaluation, low complexity", 21_000),
                        ("09/03/2024", "97110", "Therapeutic exercise x1", 9_500),
                        ("09/03/2024", "97140", "Manual therapy x1", 8_800),
                        ("09/05-10/15", "97110", "Therapeutic exercise x14", 133_000),
                        ("09/05-10/15", "97140", "Manual therapy x4", 35_200),
                        ("09/05-10/15", "97112", "Neuromuscular re-ed x3", 28_500),
                    ],
                ),
            ),
            d(2024, 10, 16),
            "Bills/2024-10-15 Lakeside Physical Therapy invoice.pdf",
            "PT charges $2,360.00 through 10/15",
        ),
        # --- junk and the duplicate
        _DemoItem(
            "scan0002 (1).pdf",
            er_discharge,
            d(2024, 7, 14),
            None,
            "exact duplicate of SCAN_20240714_0002.pdf (ER discharge instructions)",
        ),
        _DemoItem("Thumbs.db", _thumbs_db(), d(2024, 10, 16), None, "Windows thumbnail cache"),
        _DemoItem("desktop.ini", _DESKTOP_INI, d(2024, 7, 14), None, "Windows folder settings"),
        _DemoItem(
            "~$tter to ins co 8-2.docx",
            _word_owner_file("Pat Nguyen"),
            d(2024, 8, 2),
            None,
            "stale Microsoft Word lock file",
        ),
    ]
    return tuple(items)


def _index_markdown() -> str:
    items = _demo_items()
    lines = [
        "# Abby Sitgraves - MVA 07/13/2024 - case file index",
        "",
        "Client: Abby Sitgraves. Defendant driver: Trevor Hollis (Statewide Mutual, "
        f"claim {_CLAIM}).",
        "File names start with the date of service or the document's date.",
        "",
    ]
    for folder in _DEMO_FOLDERS:
        entries = sorted(
            (PurePosixPath(item.destination).name, item.note)
            for item in items
            if item.destination is not None
            and PurePosixPath(item.destination).parent.as_posix() == folder
        )
        depth = folder.count("/") + 2
        lines.append(f"{'#' * depth} {folder.rsplit('/', 1)[-1]}")
        lines.append("")
        if not entries:
            lines += ["One sub-folder per provider, below.", ""]
            continue
        lines += [f"- `{name}` - {note}" for name, note in entries]
        lines.append("")
    lines += ["## Removed during reorganisation", ""]
    lines += [f"- `{item.source}` - {item.note}" for item in items if item.destination is None]
    return "\n".join(lines) + "\n"


def sample_reorganisation() -> dict[str, object]:
    """The plan that files DEMO_CASE's loose scans the way a careful paralegal would."""
    items = _demo_items()
    operations: list[dict[str, object]] = [{"op": "mkdir", "path": f} for f in _DEMO_FOLDERS]
    folder_rank = {folder: rank for rank, folder in enumerate(_DEMO_FOLDERS)}
    moves = sorted(
        (item for item in items if item.destination is not None),
        key=lambda item: (
            folder_rank[PurePosixPath(item.destination or "").parent.as_posix()],
            item.destination,
        ),
    )
    operations += [
        {"op": "move", "source": item.source, "destination": item.destination, "overwrite": False}
        for item in moves
    ]
    operations += [
        {"op": "delete", "path": item.source} for item in items if item.destination is None
    ]
    operations.append(
        {"op": "write", "path": "INDEX.md", "text": _index_markdown(), "overwrite": False}
    )
    return {
        "scope": f"projects/{DEMO_CASE}",
        "description": (
            "File the Sitgraves MVA case's loose scans into Medical Records (by provider), "
            "Police Report, Photos, Correspondence and Bills with dated names, delete scanner "
            "junk and one exact duplicate, and add an INDEX.md."
        ),
        "author": "paralegal-agent",
        "operations": operations,
    }


# --------------------------------------------------------------------------- the rest of the firm


@dataclass(frozen=True, slots=True)
class _File:
    path: str  # relative to the workspace root, "/"-separated
    content: bytes
    modified: dt.date
    executable: bool = False


_ORGANIZE_SH = """\
#!/usr/bin/env bash
# Sort loose medical PDFs at the top of a case folder into "Medical Records/<Provider>/".
# Matches on provider keywords in the file name, so renamed scanner files are NOT caught.
# Usage: Tools/organize_medical_subfolders.sh "projects/<Case>" [--dry-run]
set -euo pipefail

case_dir="${1:?usage: $0 CASE_DIR [--dry-run]}"
dry_run="${2:-}"

declare -A providers=(
  [mercy]="Mercy Hospital ER"
  [patel]="Dr Anita Patel Orthopedics"
  [lakeside]="Lakeside Physical Therapy"
  [imaging]="City Imaging Center"
  [vincent]="St Vincent Urgent Care"
  [northside]="Northside Orthopedic Group"
)

shopt -s nullglob nocaseglob
for f in "$case_dir"/*.pdf; do
  name="$(basename "$f")"
  lower="${name,,}"
  for key in "${!providers[@]}"; do
    if [[ "$lower" == *"$key"* ]]; then
      dest="$case_dir/Medical Records/${providers[$key]}"
      if [[ "$dry_run" == "--dry-run" ]]; then
        echo "would move: $name -> Medical Records/${providers[$key]}/"
      else
        mkdir -p "$dest"
        mv -n -- "$f" "$dest/"
        echo "moved: $name -> Medical Records/${providers[$key]}/"
      fi
      break
    fi
  done
done
"""

_INVENTORY_PY = '''\
#!/usr/bin/env python3
"""Write a CSV inventory (path, bytes, modified, sha256) of every file under a folder.

Usage: python Tools/create_file_inventory.py "projects/<Case>" inventory.csv
"""

import csv
import datetime as dt
import hashlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, out = Path(argv[1]), Path(argv[2])
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "bytes", "modified", "sha256"])
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            modified = dt.datetime.fromtimestamp(stat.st_mtime).isoformat(timespec="seconds")
            writer.writerow([path.relative_to(root).as_posix(), stat.st_size, modified, digest])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''


def _clients_csv() -> bytes:
    rows = [
        [
            "client_id",
            "client_name",
            "case_folder",
            "matter_type",
            "incident_date",
            "status",
            "responsible_attorney",
            "opened",
        ],
        [
            "C-1041",
            "Abby Sitgraves",
            DEMO_CASE,
            "Motor vehicle accident",
            "2024-07-13",
            "Open - treating",
            "J. Kessler",
            "2024-07-16",
        ],
        [
            "C-0987",
            "Marcus Lee",
            "Marcus-Lee-Slip-and-Fall-2023",
            "Premises liability",
            "2023-02-11",
            "Open - negotiation",
            "R. Dunn",
            "2023-02-20",
        ],
        [
            "C-1012",
            "Daniel Rivera",
            "Rivera-v-Coastal-Freight-2024",
            "Trucking collision, litigation",
            "2024-01-22",
            "Open - discovery",
            "J. Kessler",
            "2024-01-29",
        ],
        [
            "C-0899",
            "Grace Okafor",
            "Grace-Okafor-Dog-Bite-2022",
            "Dog bite",
            "2022-05-30",
            "Closed - settled",
            "R. Dunn",
            "2022-06-06",
        ],
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _simple_record(provider: str, patient: str, dob: str, dos: str, body: Sequence[str]) -> bytes:
    lines = [
        provider.upper(),
        "",
        "CONFIDENTIAL - PROTECTED HEALTH INFORMATION",
        f"Patient: {patient}    DOB: {dob}",
        f"Date of service: {dos}",
        "",
        *body,
    ]
    return _pdf(f"{provider} {dos}", lines)


def _marcus_lee() -> list[_File]:
    case = "projects/Marcus-Lee-Slip-and-Fall-2023"
    d = dt.date
    lee, dob = "LEE, MARCUS", "11/04/1979"
    return [
        _File(
            f"{case}/Medical Records/St Vincent Urgent Care/2023-02-11 urgent care visit.pdf",
            _simple_record(
                "St Vincent Urgent Care",
                lee,
                dob,
                "02/11/2023",
                [
                    "CC: R knee pain after slipping on wet floor at grocery store.",
                    "Exam: effusion R knee, medial joint line tenderness.",
                    "XR R knee 3 views (CPT 73562): no fracture.",
                    "Dx (ICD-10-CM): S83.91XA sprain of unspecified site of right knee;",
                    "  W01.0XXA fall on same level from slipping.",
                    "CPT 99204. Knee immobilizer, crutches. F/u orthopedics.",
                ],
            ),
            d(2023, 2, 20),
        ),
        _File(
            f"{case}/Medical Records/Northside Orthopedic Group/2023-03-02 knee consult.pdf",
            _simple_record(
                "Northside Orthopedic Group",
                lee,
                dob,
                "03/02/2023",
                [
                    "Persistent R knee pain and locking since fall 02/11/2023.",
                    "McMurray positive medially. Suspect medial meniscus tear.",
                    "Plan: MRI R knee w/o contrast (CPT 73721). CPT 99244 consult.",
                ],
            ),
            d(2023, 3, 6),
        ),
        _File(
            f"{case}/Medical Records/Northside Orthopedic Group/2023-03-16 MRI right knee.pdf",
            _simple_record(
                "Northside Orthopedic Group - Imaging",
                lee,
                dob,
                "03/16/2023",
                [
                    "MRI RIGHT KNEE WITHOUT CONTRAST (CPT 73721)",
                    "Oblique tear posterior horn medial meniscus (S83.241A).",
                    "Small joint effusion. ACL/PCL intact.",
                ],
            ),
            d(2023, 3, 20),
        ),
        _File(
            f"{case}/Correspondence/2023-02-24 letter of representation to FreshWay Market.docx",
            _docx(
                _letter(
                    "February 24, 2023",
                    [
                        "FreshWay Market, Inc.",
                        "Attn: Risk Management",
                        "1500 Commerce Blvd",
                        "Riverton, ST 40116",
                    ],
                    "Marcus Lee / incident of 02/11/2023, FreshWay store #12",
                    [
                        "This firm represents Marcus Lee. Please preserve all surveillance "
                        "video from aisle 7 and the store entrance for 02/11/2023, the "
                        "incident report, and floor maintenance logs."
                    ],
                    "Rebecca Dunn, Esq.",
                ),
                d(2023, 2, 24),
            ),
            d(2023, 2, 24),
        ),
        _File(
            f"{case}/Correspondence/2023-04-18 letter from Keystone Casualty re liability.pdf",
            _pdf(
                "Keystone Casualty letter",
                [
                    "KEYSTONE CASUALTY COMPANY",
                    "",
                    "April 18, 2023",
                    "",
                    "Re: Insured FreshWay Market, Inc. / Claimant Marcus Lee / Claim KC-23-00871",
                    "",
                    "We have completed our liability investigation. A wet-floor sign was",
                    "placed 14 minutes before the fall. We therefore deny liability at this time.",
                    "",
                    "Paul Ambrose, Liability Adjuster, 555-0178",
                ],
            ),
            d(2023, 4, 21),
        ),
        _File(
            f"{case}/Photos/2023-02-11 wet floor aisle 7.jpg",
            _jpeg("FreshWay aisle 7 wet floor, no sign visible 02/11/2023", 33_000),
            d(2023, 2, 11),
        ),
        _File(
            f"{case}/Demand/2023-09-05 settlement demand.docx",
            _docx(
                _letter(
                    "September 5, 2023",
                    ["Paul Ambrose", "Keystone Casualty Company"],
                    "Claimant Marcus Lee / Claim KC-23-00871 - time-limited demand",
                    [
                        "Medical specials to date: $18,642.17 (itemised in enclosure A).",
                        "Surveillance video shows no sign in place at the time of the fall.",
                        "Our client will resolve this claim for $85,000, open 30 days.",
                    ],
                    "Rebecca Dunn, Esq.",
                ),
                d(2023, 9, 5),
            ),
            d(2023, 9, 5),
        ),
        _File(
            f"{case}/FreshWay incident report.pdf",
            _pdf(
                "FreshWay incident report",
                [
                    "FRESHWAY MARKET - CUSTOMER INCIDENT REPORT (Store #12)",
                    "Date/time: 02/11/2023 11:47    Location: aisle 7 (dairy)",
                    "Description: customer slipped on liquid near cooler door, fell on R knee.",
                    "Cleanup requested 11:31 per log; sign placement time not recorded.",
                    "Completed by: T. Nguyen, shift manager",
                ],
            ),
            d(2023, 3, 1),
        ),
        _File(
            f"{case}/scan0031.pdf",
            _simple_record(
                "Riverton Sports Physical Therapy",
                lee,
                dob,
                "06/30/2023",
                [
                    "DISCHARGE SUMMARY: 18 visits 04/03/2023 - 06/30/2023.",
                    "R knee ROM 0-130 deg; LEFS 62/80. Goals partially met.",
                    "CPT 97110, 97140, 97530.",
                ],
            ),
            d(2023, 7, 5),
        ),
    ]


def _rivera() -> list[_File]:
    case = "projects/Rivera-v-Coastal-Freight-2024"
    d = dt.date
    caption = [
        "IN THE CIRCUIT COURT OF RIVERTON COUNTY",
        "DANIEL RIVERA, Plaintiff,",
        "v.                                         Case No. 2024-CV-00318",
        "COASTAL FREIGHT LINES LLC and JAMES PORTER, Defendants.",
        "",
    ]
    return [
        _File(
            f"{case}/Pleadings/2024-03-04 complaint.pdf",
            _pdf(
                "Complaint",
                [
                    *caption,
                    "COMPLAINT AND DEMAND FOR JURY TRIAL",
                    "",
                    "1. On January 22, 2024, Defendant Porter, driving a tractor-trailer for",
                    "   Defendant Coastal Freight Lines LLC, made an unsafe lane change on I-40",
                    "   and struck Plaintiff's vehicle.",
                    "2. Count I - Negligence (Porter). Count II - Vicarious liability (Coastal).",
                    "3. Count III - Negligent hiring, retention and supervision (Coastal).",
                    "",
                    "Jordan Kessler, Esq., Kessler & Dunn, PLLC, Attorney for Plaintiff",
                ],
                producer="Court e-filing",
            ),
            d(2024, 3, 4),
        ),
        _File(
            f"{case}/Pleadings/2024-04-08 answer of Coastal Freight Lines LLC.pdf",
            _pdf(
                "Answer",
                [
                    *caption,
                    "ANSWER AND AFFIRMATIVE DEFENSES OF COASTAL FREIGHT LINES LLC",
                    "",
                    "Defendant admits Porter was acting within the scope of employment.",
                    "Defendant denies negligence and asserts comparative fault of Plaintiff.",
                    "",
                    "Meredith Voss, Harlan & Voss LLP, Attorneys for Defendants",
                ],
                producer="Court e-filing",
            ),
            d(2024, 4, 8),
        ),
        _File(
            f"{case}/Discovery/2024-05-20 plaintiff first interrogatories to Coastal Freight.docx",
            _docx(
                [
                    *caption,
                    "PLAINTIFF'S FIRST SET OF INTERROGATORIES",
                    "1. Identify all ELD and telematics data for the tractor on 01/22/2024.",
                    "2. State Porter's hours of service for the 8 days before the crash.",
                    "3. Identify all prior preventable accidents involving Porter.",
                ],
                d(2024, 5, 20),
            ),
            d(2024, 5, 20),
        ),
        _File(
            f"{case}/Discovery/2024-06-19 Coastal Freight answers to interrogatories.pdf",
            _pdf(
                "Answers to interrogatories",
                [
                    *caption,
                    "DEFENDANT COASTAL FREIGHT LINES LLC'S ANSWERS",
                    "",
                    "1. ELD data produced as COASTAL 000114-000162.",
                    "2. See driver logs produced as COASTAL 000163-000190.",
                    "3. Objection: overly broad. Subject to objection, one (2021).",
                ],
                producer="Harlan & Voss DMS",
            ),
            d(2024, 6, 19),
        ),
        _File(
            f"{case}/Correspondence/2024-02-12 preservation letter to Coastal Freight.docx",
            _docx(
                _letter(
                    "February 12, 2024",
                    [
                        "Coastal Freight Lines LLC",
                        "Attn: Safety Director",
                        "4400 Port Road",
                        "Bayside, ST 40220",
                    ],
                    "Spoliation notice - collision of 01/22/2024, Unit 2217",
                    [
                        "Preserve the tractor's ECM/ELD data, dash camera video, driver "
                        "qualification file, hours-of-service logs and dispatch records."
                    ],
                    _ATTORNEY,
                ),
                d(2024, 2, 12),
            ),
            d(2024, 2, 12),
        ),
        _File(
            f"{case}/Correspondence/2024-06-25 email from defense counsel re deposition dates.eml",
            _text(
                [
                    'From: "Meredith Voss" <mvoss@harlanvoss.example>',
                    'To: "Jordan Kessler" <jkessler@kesslerdunn.example>',
                    "Subject: Rivera v. Coastal - deposition dates",
                    "Date: Tue, 25 Jun 2024 09:14:51 -0500",
                    "Message-ID: <20240625141451.2217@harlanvoss.example>",
                    "",
                    "Jordan - we can produce Mr. Porter on July 30 or August 6.",
                    "We would like Mr. Rivera the week of August 12. - Meredith",
                ]
            ),
            d(2024, 6, 25),
        ),
        _File(
            f"{case}/Medical Records/Harbor General Hospital/2024-01-22 admission summary.pdf",
            _simple_record(
                "Harbor General Hospital",
                "RIVERA, DANIEL",
                "07/09/1971",
                "01/22/2024 - 01/26/2024",
                [
                    "Admitted via trauma bay after MVC with tractor-trailer.",
                    "Dx: S32.401A fracture of right acetabulum; S22.31XA rib fx.",
                    "ORIF right acetabulum 01/23/2024 (CPT 27226).",
                    "Discharged to inpatient rehabilitation 01/26/2024.",
                ],
            ),
            d(2024, 2, 15),
        ),
        _File(
            f"{case}/case notes.txt",
            _text(
                [
                    "Rivera v. Coastal Freight - running notes",
                    "2024-01-29 intake; client in rehab. Wife Elena is contact (555-0126).",
                    "2024-03-04 complaint filed; service on Coastal via registered agent 3/7.",
                    "2024-06-19 answers received - ELD data produced, need expert to review.",
                    "TODO: depo prep, retain trucking safety expert, get rehab records.",
                ]
            ),
            d(2024, 6, 26),
        ),
    ]


def _okafor() -> list[_File]:
    case = "projects/Grace-Okafor-Dog-Bite-2022"
    d = dt.date
    return [
        _File(
            f"{case}/Medical Records/Riverton Family Medicine/2022-05-30 wound care visit.pdf",
            _simple_record(
                "Riverton Family Medicine",
                "OKAFOR, GRACE",
                "01/17/1994",
                "05/30/2022",
                [
                    "Dog bite L forearm, 3 cm laceration. Irrigation, 4 sutures.",
                    "Dx: W54.0XXA bitten by dog; S51.852A open bite L forearm.",
                    "CPT 12002, 90715 (Tdap). Amoxicillin-clavulanate x7 days.",
                ],
            ),
            d(2022, 6, 10),
        ),
        _File(
            f"{case}/Settlement/2022-11-14 settlement statement.pdf",
            _pdf(
                "Settlement statement",
                [
                    "SETTLEMENT STATEMENT - Grace Okafor v. (homeowner) - CONFIDENTIAL",
                    "Gross settlement (Lakeshore Home Insurance) ......... $28,000.00",
                    "Attorney fee (33 1/3%) .............................. $ 9,333.33",
                    "Case costs .......................................... $   412.50",
                    "Medical liens (reduced) ............................. $ 1,980.00",
                    "Net to client ....................................... $16,274.17",
                ],
            ),
            d(2022, 11, 14),
        ),
        _File(
            f"{case}/2022-11-30 closing letter to client.docx",
            _docx(
                _letter(
                    "November 30, 2022",
                    ["Ms. Grace Okafor"],
                    "Closing of your file",
                    [
                        "Your matter has settled and all liens are resolved. We will keep "
                        "your file for seven years, then destroy it securely."
                    ],
                    "Rebecca Dunn, Esq.",
                ),
                d(2022, 11, 30),
            ),
            d(2022, 11, 30),
        ),
    ]


def _firm_files() -> list[_File]:
    d = dt.date
    report = "Reports/Marcus-Lee-Slip-and-Fall-2023/2023-09-01 medical chronology.md"
    return [
        _File(
            "Tools/organize_medical_subfolders.sh",
            _ORGANIZE_SH.encode("utf-8"),
            d(2023, 5, 2),
            executable=True,
        ),
        _File(
            "Tools/create_file_inventory.py",
            _INVENTORY_PY.encode("utf-8"),
            d(2023, 5, 9),
            executable=True,
        ),
        _File("Database/clients.csv", _clients_csv(), d(2024, 7, 16)),
        _File(
            report,
            _text(
                [
                    "# Medical chronology - Marcus Lee (slip and fall, 02/11/2023)",
                    "",
                    "Prepared for the settlement demand. Privileged and confidential.",
                    "",
                    "| Date | Provider | Event | Charges |",
                    "|---|---|---|---|",
                    "| 2023-02-11 | St Vincent Urgent Care | R knee sprain, x-ray negative"
                    " | $612.00 |",
                    "| 2023-03-02 | Northside Orthopedic Group | Consult; meniscus tear suspected"
                    " | $480.00 |",
                    "| 2023-03-16 | Northside Orthopedic Group | MRI: medial meniscus tear"
                    " | $2,310.00 |",
                    "| 2023-04-03 to 2023-06-30 | Riverton Sports PT | 18 visits | $5,940.17 |",
                    "| 2023-07-19 | Northside Orthopedic Group | Arthroscopic partial"
                    " meniscectomy quoted | $9,300.00 (est.) |",
                    "",
                    "Total medical specials: **$18,642.17**",
                ]
            ),
            d(2023, 9, 1),
        ),
    ]


def _all_files() -> list[_File]:
    demo = [
        _File(f"projects/{DEMO_CASE}/{item.source}", item.content, item.scanned)
        for item in _demo_items()
    ]
    return demo + _marcus_lee() + _rivera() + _okafor() + _firm_files()


def _timestamp(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(17, 0), tzinfo=dt.UTC).timestamp()


def build_sample_workspace(root: Path) -> None:
    """Create the sample firm share under ``root``, which must be absent or an empty folder.

    Raises FileExistsError if ``root`` exists and is not an empty directory.
    """
    if root.exists() or root.is_symlink():
        if not root.is_dir() or root.is_symlink():
            raise FileExistsError(f"{root} exists and is not a directory; refusing to build there")
        if any(root.iterdir()):
            raise FileExistsError(
                f"{root} is not empty; the sample workspace must be built in a new or empty folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    for entry in _all_files():
        target = root.joinpath(*PurePosixPath(entry.path).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.content)
        if entry.executable:
            target.chmod(0o755)
        stamp = _timestamp(entry.modified)
        os.utime(target, (stamp, stamp))
