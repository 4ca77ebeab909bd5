"""Synthetic multi-observer patients for tests, benchmarks and sample data.

Each structure is an ellipsoid (or an axis-aligned box) drawn as planar polygons on the
CT slice planes; each observer draws a perturbed copy (shifted centre, scaled radii).
:func:`write_observer_patient` writes the CT (optional) and one RTSTRUCT per observer
(StructureSetLabel = the observer's name) with the builders of :mod:`rtplan.testing.synthetic`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from rtplan.errors import InputError
from rtplan.grid import Grid
from rtplan.testing.synthetic import (
    SyntheticROI,
    ct_series_datasets,
    rtstruct_dataset_from_contours,
    write_datasets,
)


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid (``box=False``) or box (``box=True``) structure in LPS mm."""

    name: str
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    interpreted_type: str = "ORGAN"
    box: bool = False

    def contours(self, plane_z_mm: Sequence[float], points: int = 72) -> list[np.ndarray]:
        """``(N, 3)`` closed polygons on the planes that cut the shape."""
        cx, cy, cz = self.centre_mm
        rx, ry, rz = self.radii_mm
        out = []
        for z in plane_z_mm:
            u = (z - cz) / rz
            if abs(u) >= 1:
                continue
            if self.box:
                xy = np.array([[-rx, -ry], [rx, -ry], [rx, ry], [-rx, ry]]) + [cx, cy]
            else:
                t = np.linspace(0, 2 * np.pi, points, endpoint=False)
                f = np.sqrt(1 - u * u)
                xy = np.c_[cx + rx * f * np.cos(t), cy + ry * f * np.sin(t)]
            out.append(np.c_[xy, np.full(len(xy), z)])
        return out


def perturbed(shape: Ellipsoid, rng: np.random.Generator, shift_mm=2.0, scale=0.08) -> Ellipsoid:
    """An observer's version: centre moved up to ``shift_mm`` per axis, radii scaled by
    up to ``1 +- scale``."""
    centre = tuple(np.asarray(shape.centre_mm) + rng.uniform(-shift_mm, shift_mm, 3))
    radii = tuple(np.asarray(shape.radii_mm) * (1 + rng.uniform(-scale, scale, 3)))
    return replace(shape, centre_mm=centre, radii_mm=radii)


#: A retroperitoneal-sarcoma-like set of structures (LPS mm, centred near the origin).
RPS_STRUCTURES = (
    Ellipsoid("GTV", (20.0, 10.0, 0.0), (45.0, 38.0, 40.0), "GTV"),
    Ellipsoid("CTV", (20.0, 10.0, 0.0), (58.0, 51.0, 53.0), "CTV"),
    Ellipsoid("Liver", (-60.0, -10.0, 60.0), (85.0, 70.0, 60.0)),
    Ellipsoid("Kidney_L", (75.0, 60.0, -20.0), (28.0, 30.0, 50.0)),
    Ellipsoid("Kidney_R", (-75.0, 60.0, -20.0), (28.0, 30.0, 50.0)),
)


def observer_structures(
    base: Sequence[Ellipsoid], observers: Sequence[str], seed: int = 0, **perturbation
) -> dict[str, list[Ellipsoid]]:
    """Each observer's perturbed copy of ``base`` (reproducible from ``seed``)."""
    rng = np.random.default_rng(seed)
    return {o: [perturbed(s, rng, **perturbation) for s in base] for o in observers}


def write_observer_patient(
    folder: str | os.PathLike,
    patient_id: str,
    observers: Mapping[str, Sequence[Ellipsoid]],
    *,
    ct_grid: Grid | None = None,
    plane_z_mm: Sequence[float] | None = None,
) -> list[Path]:
    """Write one patient: the CT (when ``ct_grid`` is given) and an RTSTRUCT per observer.

    Parameters
    ----------
    folder : path
        Created when missing.
    patient_id : str
        PatientID (PatientName is derived from it).
    observers : mapping of str to sequence of Ellipsoid
        Each observer's structures; the name becomes StructureSetLabel.
    ct_grid : Grid, optional
        An axial grid: a CT of water (0 HU) is written and contours lie on its slices.
    plane_z_mm : sequence of float, optional
        Contour planes when there is no CT.

    Returns
    -------
    list of pathlib.Path
        The RTSTRUCT files, in observer order.
    """
    folder = Path(folder)
    frame, study = generate_uid(), generate_uid()
    name = f"{patient_id}^Observer study"
    ct = []
    if ct_grid is not None:
        ct = ct_series_datasets(
            np.zeros(ct_grid.shape),
            ct_grid,
            patient_id=patient_id,
            patient_name=name,
            study_uid=study,
            frame_of_reference_uid=frame,
        )
        write_datasets(ct, folder / "CT", [f"CT_{k:04d}.dcm" for k in range(len(ct))])
        k = np.arange(ct_grid.shape[0], dtype=float)
        plane_z_mm = ct_grid.index_to_world(np.c_[k, 0 * k, 0 * k])[:, 2]
    if plane_z_mm is None:
        raise InputError("give ct_grid or plane_z_mm")
    paths = []
    for observer, shapes in observers.items():
        rois = [
            SyntheticROI(s.name, s.contours(plane_z_mm), interpreted_type=s.interpreted_type)
            for s in shapes
        ]
        ds = rtstruct_dataset_from_contours(
            rois,
            ct_datasets=ct or None,
            patient_id=patient_id,
            patient_name=name,
            study_uid=study,
            frame_of_reference_uid=frame,
            label=observer,
        )
        paths += write_datasets([ds], folder, [f"RS_{observer}.dcm"])
    return paths
