"""ELAN ``.eaf`` (EAF 3.0): one ``labels/<stem>.eaf`` per video; the labels are one tier's annotations.

Read from the EAF schema documentation (MPI "ELAN Annotation Format", EAFv3.0.xsd, and the ELAN manual):
``<ANNOTATION_DOCUMENT>`` with ``<HEADER TIME_UNITS="milliseconds">`` and ``<MEDIA_DESCRIPTOR>``,
``<TIME_ORDER>`` of ``<TIME_SLOT TIME_SLOT_ID TIME_VALUE>`` (ms), and ``<TIER TIER_ID>`` elements holding
``<ANNOTATION><ALIGNABLE_ANNOTATION TIME_SLOT_REF1 TIME_SLOT_REF2><ANNOTATION_VALUE>``.

The tier is ``data.eaf_tier``; when that is empty, the file's only tier without a ``PARENT_REF``. Each
annotation is a half-open ``[start, end)`` span in seconds, as a ``.csv`` row.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from lstm_tv.data.annotation_tools.common import (
    SECOND_SPANS,
    ClassMap,
    Entry,
    Predictions,
    XmlDoc,
    number,
    read_xml,
    runs,
    second_span,
    span_annotation,
)
from lstm_tv.errors import LabelError

NAME = "eaf"
TITLE = "ELAN .eaf"
SUFFIXES = (".eaf",)
PER_VIDEO = True
CONFIDENCE_TIER = "{tier}-confidence"  # the writer's dependent tier of per-annotation confidences


def read(path: Path, mapper: ClassMap, options: dict) -> list[Entry]:
    """The spans of one tier (``options["eaf_tier"]``) of an ``.eaf`` file."""
    doc = read_xml(path)
    root = doc.root
    if root.tag != "ANNOTATION_DOCUMENT":
        hint = "; this looks like CVAT XML" if root.tag == "annotations" else ""
        raise LabelError(f"{path}: {doc.where(root)}: not an {TITLE} file (the root must be "
                         f"<ANNOTATION_DOCUMENT>){hint}")
    header = root.find("HEADER")
    units = "milliseconds" if header is None else header.get("TIME_UNITS", "milliseconds")
    if units != "milliseconds":
        raise LabelError(f"{path}: {doc.where(header)}: TIME_UNITS={units!r}; only milliseconds are read")
    for media in root.iter("MEDIA_DESCRIPTOR"):
        if number(path, doc.where(media), media.get("TIME_ORIGIN", "0"), "TIME_ORIGIN") != 0:
            raise LabelError(f"{path}: {doc.where(media, 'TIME_ORIGIN')}: the media is offset; lstm-tv reads times "
                             f"from the video's first frame: set the offset to 0 in ELAN")
    slots = _slots(doc)
    tier = _tier(doc, options.get("eaf_tier", ""))
    spans = []
    for ann in tier.iter("ANNOTATION"):
        aligned = ann.find("ALIGNABLE_ANNOTATION")
        if aligned is None:
            raise LabelError(f"{path}: {doc.where(ann)}: tier {tier.get('TIER_ID')!r} is not time-aligned "
                             f"(REF_ANNOTATION); name a time-aligned tier in data.eaf_tier")
        where = doc.where(aligned, "ANNOTATION_ID")
        start, end = (_slot_time(doc, aligned, slots, key) for key in ("TIME_SLOT_REF1", "TIME_SLOT_REF2"))
        index = mapper.index(path, where, (aligned.findtext("ANNOTATION_VALUE") or "").strip())
        spans.append(second_span(path, where, start / 1000, end / 1000, index))
    return [Entry((path.stem,), span_annotation(path, SECOND_SPANS, spans))]


def _slots(doc: XmlDoc) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for slot in doc.root.iter("TIME_SLOT"):
        value = slot.get("TIME_VALUE")
        out[slot.get("TIME_SLOT_ID", "")] = None if value is None else \
            number(doc.path, doc.where(slot, "TIME_SLOT_ID"), value, "TIME_VALUE")
    return out


def _slot_time(doc: XmlDoc, aligned: ET.Element, slots: dict, key: str) -> float:
    ref = aligned.get(key)
    where = doc.where(aligned, "ANNOTATION_ID")
    if ref not in slots:
        raise LabelError(f"{doc.path}: {where}: {key}={ref!r} names no TIME_SLOT in <TIME_ORDER>")
    if slots[ref] is None:
        raise LabelError(f"{doc.path}: {where}: TIME_SLOT {ref!r} has no TIME_VALUE (unaligned); align it in ELAN")
    return slots[ref]


def _tier(doc: XmlDoc, name: str) -> ET.Element:
    tiers = doc.root.findall("TIER")
    names = ", ".join(repr(t.get("TIER_ID")) for t in tiers) or "none"
    if name:
        for t in tiers:
            if t.get("TIER_ID") == name:
                return t
        raise LabelError(f"{doc.path}: no <TIER TIER_ID={name!r}> (data.eaf_tier); its tiers are {names}")
    independent = [t for t in tiers if t.get("PARENT_REF") is None]
    if len(independent) != 1:
        raise LabelError(f"{doc.path}: {len(independent)} independent tiers ({names}); name the one with the "
                         f"labels in data.eaf_tier")
    return independent[0]


def render(pred: Predictions, *, tier: str = "labels") -> str:
    """An EAF 3.0 document of the predictions: tier ``tier`` with one annotation per non-background run.

    Times are the runs' first frame and the frame after their last, in ms. ELAN has no field for a
    confidence, so each annotation's mean confidence is a symbolic association on the dependent tier
    ``<tier>-confidence`` (ELAN shows it under the label; ``prepare`` reads only ``tier``).
    """
    root = ET.Element("ANNOTATION_DOCUMENT", {
        "AUTHOR": "lstm-tv", "FORMAT": "3.0", "VERSION": "3.0",
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:noNamespaceSchemaLocation": "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"})
    header = ET.SubElement(root, "HEADER", {"MEDIA_FILE": "", "TIME_UNITS": "milliseconds"})
    ET.SubElement(header, "MEDIA_DESCRIPTOR", {"MEDIA_URL": pred.video, "RELATIVE_MEDIA_URL": f"./{pred.video}"})
    order = ET.SubElement(root, "TIME_ORDER")
    labels = ET.SubElement(root, "TIER", {"LINGUISTIC_TYPE_REF": "default-lt", "TIER_ID": tier})
    scores = ET.SubElement(root, "TIER", {"LINGUISTIC_TYPE_REF": "confidence-lt", "PARENT_REF": tier,
                                          "TIER_ID": CONFIDENCE_TIER.format(tier=tier)})
    for i, run in enumerate(runs(pred)):
        for k, frame in enumerate((run.start, run.stop)):
            ET.SubElement(order, "TIME_SLOT", {"TIME_SLOT_ID": f"ts{2 * i + k + 1}",
                                               "TIME_VALUE": str(round(pred.time(frame) * 1000))})
        aligned = ET.SubElement(ET.SubElement(labels, "ANNOTATION"), "ALIGNABLE_ANNOTATION", {
            "ANNOTATION_ID": f"a{2 * i + 1}", "TIME_SLOT_REF1": f"ts{2 * i + 1}", "TIME_SLOT_REF2": f"ts{2 * i + 2}"})
        ET.SubElement(aligned, "ANNOTATION_VALUE").text = pred.classes[run.label]
        ref = ET.SubElement(ET.SubElement(scores, "ANNOTATION"), "REF_ANNOTATION", {
            "ANNOTATION_ID": f"a{2 * i + 2}", "ANNOTATION_REF": f"a{2 * i + 1}"})
        ET.SubElement(ref, "ANNOTATION_VALUE").text = f"{run.confidence:.3f}"
    ET.SubElement(root, "LINGUISTIC_TYPE", {"GRAPHIC_REFERENCES": "false", "LINGUISTIC_TYPE_ID": "default-lt",
                                            "TIME_ALIGNABLE": "true"})
    ET.SubElement(root, "LINGUISTIC_TYPE", {"CONSTRAINTS": "Symbolic_Association", "GRAPHIC_REFERENCES": "false",
                                            "LINGUISTIC_TYPE_ID": "confidence-lt", "TIME_ALIGNABLE": "false"})
    ET.SubElement(root, "CONSTRAINT", {"DESCRIPTION": "1-1 association with a parent annotation",
                                       "STEREOTYPE": "Symbolic_Association"})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
