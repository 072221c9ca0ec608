"""The whole pydicom test-file set and pydicom-data corpus: expected outcome for every file.

Outcomes: "converted" (verified bit-exact, and re-checked here with two independent decoders:
pylibjpeg-openjpeg, and OHIF's own HTJ2K decoder), a pass-through reason, or the domain error a
file is rejected with. A file appearing in the corpus
that is not in the table fails the test, so the table stays complete.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from dicomgate.codec.capabilities import HTJ2K_LOSSLESS
from dicomgate.codec.transcode import TranscodeOptions, transcode
from dicomgate.errors import DicomgateError
from tests.codec.helpers import (
    assert_same_except_allowed,
    independent_pixels,
    read,
    source_pixels,
)
from tests.codec.openjph import OpenJPH

EXPECTED: dict[str, str] = {
    "test_files/693_J2KI.dcm": "lossy_source",
    "test_files/CT_small.dcm": "converted",
    "test_files/ExplVR_BigEnd.dcm": "converted",
    "test_files/ExplVR_BigEndNoMeta.dcm": "no_pixel_data",
    "test_files/ExplVR_LitEndNoMeta.dcm": "no_pixel_data",
    "test_files/GDCMJ2K_TextGBR.dcm": "converted",
    "test_files/J2K_pixelrep_mismatch.dcm": "converted",
    "test_files/JPEG-lossy.dcm": "lossy_source",
    # Its SIZ declares 3,722,445,056 columns where the dataset says 256: a header bomb.
    "test_files/JPEG2000-embedded-sequence-delimiter.dcm": "InvalidCodestream",
    "test_files/JPEG2000.dcm": "lossy_source",
    "test_files/JPEGLSNearLossless_08.dcm": "lossy_source",
    "test_files/JPEGLSNearLossless_16.dcm": "lossy_source",
    "test_files/JPGExtended.dcm": "lossy_source",
    "test_files/MR_small.dcm": "converted",
    "test_files/MR_small_RLE.dcm": "converted",
    "test_files/MR_small_bigendian.dcm": "converted",
    "test_files/MR_small_expb.dcm": "converted",
    "test_files/MR_small_implicit.dcm": "converted",
    "test_files/MR_small_jp2klossless.dcm": "converted",
    "test_files/MR_small_jpeg_ls_lossless.dcm": "converted",
    "test_files/MR_small_padded.dcm": "padded_pixel_data",  # 128 bytes after the frame
    "test_files/MR_truncated.dcm": "InvalidDicom",
    "test_files/SC_jpeg_no_color_transform.dcm": "lossy_source",
    "test_files/SC_jpeg_no_color_transform_2.dcm": "lossy_source",
    "test_files/SC_rgb_dcmtk_+eb+cr.dcm": "lossy_source",
    "test_files/SC_rgb_dcmtk_+eb+cy+n1.dcm": "lossy_source",
    "test_files/SC_rgb_dcmtk_+eb+cy+n2.dcm": "lossy_source",
    "test_files/SC_rgb_dcmtk_+eb+cy+np.dcm": "lossy_source",
    "test_files/SC_rgb_dcmtk_+eb+cy+s2.dcm": "lossy_source",
    "test_files/SC_rgb_dcmtk_+eb+cy+s4.dcm": "lossy_source",
    "test_files/SC_rgb_gdcm_KY.dcm": "lossy_source",
    "test_files/SC_rgb_jls_lossy_line.dcm": "lossy_source",
    "test_files/SC_rgb_jls_lossy_sample.dcm": "lossy_source",
    "test_files/SC_rgb_jpeg.dcm": "lossy_source",
    "test_files/SC_rgb_jpeg_app14_dcmd.dcm": "lossy_source",
    "test_files/SC_rgb_jpeg_dcmd.dcm": "converted",
    "test_files/SC_rgb_jpeg_dcmtk.dcm": "lossy_source",
    "test_files/SC_rgb_jpeg_gdcm.dcm": "converted",
    "test_files/SC_rgb_jpeg_lossy_gdcm.dcm": "lossy_source",
    "test_files/SC_rgb_rle.dcm": "converted",
    "test_files/SC_rgb_rle_16bit.dcm": "converted",
    "test_files/SC_rgb_rle_16bit_2frame.dcm": "converted",
    "test_files/SC_rgb_rle_2frame.dcm": "converted",
    "test_files/SC_rgb_rle_32bit.dcm": "codec_refused",
    "test_files/SC_rgb_rle_32bit_2frame.dcm": "codec_refused",
    "test_files/SC_rgb_small_odd.dcm": "converted",
    "test_files/SC_rgb_small_odd_big_endian.dcm": "converted",
    "test_files/SC_rgb_small_odd_jpeg.dcm": "lossy_source",
    "test_files/SC_ybr_full_422_uncompressed.dcm": "subsampled_ybr",
    "test_files/UN_sequence.dcm": "InvalidDicom",
    "test_files/badVR.dcm": "InvalidDicom",
    "test_files/crayons.icc": "NotDicom",
    "test_files/dicomdirtests/77654033/CR1/6154": "converted",
    "test_files/dicomdirtests/77654033/CR2/6247": "converted",
    "test_files/dicomdirtests/77654033/CR3/6278": "converted",
    "test_files/dicomdirtests/77654033/CT2/17106": "converted",
    "test_files/dicomdirtests/77654033/CT2/17136": "converted",
    "test_files/dicomdirtests/77654033/CT2/17166": "converted",
    "test_files/dicomdirtests/77654033/CT2/17196": "converted",
    "test_files/dicomdirtests/98892001/CT2N/6293": "converted",
    "test_files/dicomdirtests/98892001/CT2N/6924": "converted",
    "test_files/dicomdirtests/98892001/CT5N/2062": "converted",
    "test_files/dicomdirtests/98892001/CT5N/2392": "converted",
    "test_files/dicomdirtests/98892001/CT5N/2693": "converted",
    "test_files/dicomdirtests/98892001/CT5N/3023": "converted",
    "test_files/dicomdirtests/98892001/CT5N/3353": "converted",
    "test_files/dicomdirtests/98892003/MR1/15820": "converted",
    "test_files/dicomdirtests/98892003/MR1/4919": "converted",
    "test_files/dicomdirtests/98892003/MR1/5641": "converted",
    "test_files/dicomdirtests/98892003/MR2/15970": "converted",
    "test_files/dicomdirtests/98892003/MR2/4950": "converted",
    "test_files/dicomdirtests/98892003/MR2/4981": "converted",
    "test_files/dicomdirtests/98892003/MR2/5011": "converted",
    "test_files/dicomdirtests/98892003/MR2/6273": "converted",
    "test_files/dicomdirtests/98892003/MR2/6605": "converted",
    "test_files/dicomdirtests/98892003/MR2/6935": "converted",
    "test_files/dicomdirtests/98892003/MR700/4467": "converted",
    "test_files/dicomdirtests/98892003/MR700/4528": "converted",
    "test_files/dicomdirtests/98892003/MR700/4558": "converted",
    "test_files/dicomdirtests/98892003/MR700/4588": "converted",
    "test_files/dicomdirtests/98892003/MR700/4618": "converted",
    "test_files/dicomdirtests/98892003/MR700/4648": "converted",
    "test_files/dicomdirtests/98892003/MR700/4678": "converted",
    "test_files/dicomdirtests/DICOMDIR": "InvalidDicom",
    "test_files/dicomdirtests/DICOMDIR-bigEnd": "InvalidDicom",
    "test_files/dicomdirtests/DICOMDIR-empty.dcm": "InvalidDicom",
    "test_files/dicomdirtests/DICOMDIR-implicit": "InvalidDicom",
    "test_files/dicomdirtests/DICOMDIR-nooffset": "InvalidDicom",
    "test_files/dicomdirtests/DICOMDIR-nopatient": "InvalidDicom",
    "test_files/dicomdirtests/DICOMDIR-reordered": "InvalidDicom",
    "test_files/dicomdirtests/TINY_ALPHA/DICOMDIR": "InvalidDicom",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000000": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000001": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000002": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000003": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000004": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000005": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000006": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000007": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000008": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000009": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000A": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000B": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000C": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000D": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000E": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000F": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000G": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000H": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000I": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000J": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000K": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000L": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000M": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000N": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000O": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000P": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Q": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000R": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000S": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000T": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000U": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000V": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000W": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000X": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Y": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Z": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000010": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000011": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000012": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000013": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000014": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000015": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000016": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000017": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000018": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000019": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001A": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001B": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001C": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001D": "no_pixel_data",
    "test_files/dicomdirtests/TINY_ALPHA/README": "NotDicom",
    "test_files/empty_charset_LEI.dcm": "InvalidDicom",
    "test_files/examples_jpeg2k.dcm": "converted",
    "test_files/examples_overlay.dcm": "converted",
    "test_files/examples_palette.dcm": "converted",
    "test_files/examples_rgb_color.dcm": "converted",
    "test_files/examples_ybr_color.dcm": "lossy_source",
    "test_files/image_dfl.dcm": "converted",
    "test_files/liver_1frame.dcm": "bits_allocated_1",
    "test_files/liver_expb_1frame.dcm": "bits_allocated_1",
    "test_files/meta_missing_tsyntax.dcm": "InvalidDicom",
    "test_files/nested_priv_SQ.dcm": "InvalidDicom",
    "test_files/no_meta.dcm": "NotDicom",
    "test_files/no_meta_group_length.dcm": "InvalidDicom",
    "test_files/priv_SQ.dcm": "InvalidDicom",
    "test_files/reportsi.dcm": "no_pixel_data",
    "test_files/reportsi_with_empty_number_tags.dcm": "no_pixel_data",
    "test_files/rtdose.dcm": "codec_refused",
    "test_files/rtdose_1frame.dcm": "codec_refused",
    "test_files/rtdose_expb.dcm": "codec_refused",
    "test_files/rtdose_expb_1frame.dcm": "codec_refused",
    "test_files/rtdose_rle.dcm": "codec_refused",
    "test_files/rtdose_rle_1frame.dcm": "codec_refused",
    "test_files/rtplan.dcm": "no_pixel_data",
    "test_files/rtplan.dump": "NotDicom",
    "test_files/rtplan_truncated.dcm": "no_pixel_data",
    "test_files/rtstruct.dcm": "no_pixel_data",
    "test_files/rtstruct.dump": "NotDicom",
    "test_files/test-SR.dcm": "no_pixel_data",
    "test_files/waveform_ecg.dcm": "no_pixel_data",
    "test_files/zipMR.gz": "NotDicom",
    "data/693_J2KR.dcm": "converted",
    "data/693_UNCI.dcm": "converted",
    "data/693_UNCR.dcm": "converted",
    "data/JPEG-LL.dcm": "converted",
    "data/JPEG2000_UNC.dcm": "converted",
    "data/JPGLosslessP14SV1_1s_1f_8b.dcm": "converted",
    "data/MR-SIEMENS-DICOM-WithOverlays.dcm": "converted",
    "data/MR2_J2KI.dcm": "lossy_source",
    "data/MR2_J2KR.dcm": "converted",
    "data/MR2_UNCI.dcm": "converted",
    "data/MR2_UNCR.dcm": "converted",
    "data/OBXXXX1A.dcm": "converted",
    "data/OBXXXX1A_2frame.dcm": "converted",
    "data/OBXXXX1A_expb.dcm": "converted",
    "data/OBXXXX1A_expb_2frame.dcm": "converted",
    "data/OBXXXX1A_rle.dcm": "converted",
    "data/OBXXXX1A_rle_2frame.dcm": "converted",
    "data/OT-PAL-8-face.dcm": "converted",
    "data/RG1_J2KI.dcm": "lossy_source",
    "data/RG1_J2KR.dcm": "converted",
    "data/RG1_UNCI.dcm": "converted",
    "data/RG1_UNCR.dcm": "converted",
    "data/RG3_J2KI.dcm": "lossy_source",
    "data/RG3_J2KR.dcm": "converted",
    "data/RG3_UNCI.dcm": "converted",
    "data/RG3_UNCR.dcm": "converted",
    "data/SC_rgb.dcm": "converted",
    "data/SC_rgb_16bit.dcm": "converted",
    "data/SC_rgb_16bit_2frame.dcm": "converted",
    "data/SC_rgb_2frame.dcm": "converted",
    "data/SC_rgb_32bit.dcm": "codec_refused",
    "data/SC_rgb_32bit_2frame.dcm": "codec_refused",
    "data/SC_rgb_dcmtk_ebcr_dcmd.dcm": "converted",
    "data/SC_rgb_dcmtk_ebcyn1_dcmd.dcm": "converted",
    "data/SC_rgb_dcmtk_ebcyn2_dcmd.dcm": "converted",
    "data/SC_rgb_dcmtk_ebcynp_dcmd.dcm": "converted",
    "data/SC_rgb_dcmtk_ebcys2_dcmd.dcm": "converted",
    "data/SC_rgb_dcmtk_ebcys4_dcmd.dcm": "converted",
    "data/SC_rgb_expb.dcm": "converted",
    "data/SC_rgb_expb_16bit.dcm": "converted",
    "data/SC_rgb_expb_16bit_2frame.dcm": "converted",
    "data/SC_rgb_expb_2frame.dcm": "converted",
    "data/SC_rgb_expb_32bit.dcm": "codec_refused",
    "data/SC_rgb_expb_32bit_2frame.dcm": "codec_refused",
    "data/SC_rgb_gdcm2k_uncompressed.dcm": "converted",
    "data/SC_ybr_full_uncompressed.dcm": "ybr_full",
    "data/US1_J2KI.dcm": "lossy_source",
    "data/US1_J2KR.dcm": "converted",
    "data/US1_UNCI.dcm": "converted",
    "data/US1_UNCR.dcm": "converted",
    "data/bad_sequence.dcm": "InvalidDicom",  # its SOP Instance UID is a hex digest
    "data/color-pl.dcm": "converted",
    "data/color-px.dcm": "converted",
    "data/color3d_jpeg_baseline.dcm": "lossy_source",
    "data/eCT_Supplemental.dcm": "converted",
    "data/emri_small.dcm": "converted",
    "data/emri_small_RLE.dcm": "converted",
    "data/emri_small_big_endian.dcm": "converted",
    "data/emri_small_jpeg_2k_lossless.dcm": "converted",
    "data/emri_small_jpeg_2k_lossless_too_short.dcm": "InvalidDicom",
    "data/emri_small_jpeg_ls_lossless.dcm": "converted",
    "data/explicit_VR-UN.dcm": "converted",
    "data/gdcm-US-ALOKA-16.dcm": "converted",
    "data/gdcm-US-ALOKA-16_big.dcm": "converted",
    "data/liver.dcm": "bits_allocated_1",
    "data/liver_expb.dcm": "bits_allocated_1",
    "data/mlut_18.dcm": "converted",
    "data/vlut_04.dcm": "converted",
}
SKIP_SUFFIXES = {".py", ".pyc", ".json", ".txt", ".md"}


def _corpus(corpus_dir: Path, pydicom_data_dir: Path) -> dict[str, Path]:
    files = {}
    for root in (corpus_dir, pydicom_data_dir):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix not in SKIP_SUFFIXES:
                files[f"{root.name}/{path.relative_to(root)}"] = path
    return files


def test_every_corpus_file_has_its_expected_outcome(
    corpus_dir: Path, pydicom_data_dir: Path, openjph: OpenJPH
) -> None:
    files = _corpus(corpus_dir, pydicom_data_dir)
    assert set(files) == set(EXPECTED), "corpus and table differ"
    wrong: dict[str, tuple[str, str]] = {}
    for name, path in files.items():
        data = path.read_bytes()
        try:
            result = transcode(data, TranscodeOptions())
        except DicomgateError as exc:
            outcome = type(exc).__name__
        else:
            outcome = "converted" if result.converted else str(result.reason)
            if result.converted:
                assert result.verified and result.transfer_syntax == HTJ2K_LOSSLESS, name
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = source_pixels(data)
                    same = np.array_equal(independent_pixels(result.data), expected)
                assert same, f"{name}: pixels differ"
                shown = openjph.decode_instance(result.data)  # what OHIF's viewer decodes
                assert np.array_equal(shown, expected), f"{name}: OHIF's decoder differs"
                assert result.sop_instance_uid == read(data).SOPInstanceUID
                assert_same_except_allowed(read(data), read(result.data))
            else:
                assert result.data is data, f"{name}: pass-through must return the input bytes"
        if outcome != EXPECTED[name]:
            wrong[name] = (EXPECTED[name], outcome)
    assert not wrong, wrong


@pytest.mark.parametrize("reason", sorted({v for v in EXPECTED.values() if v.islower()}))
def test_the_table_covers_each_outcome(reason: str) -> None:
    assert reason in {
        "converted",
        "no_pixel_data",
        "lossy_source",
        "bits_allocated_1",
        "subsampled_ybr",
        "ybr_full",
        "padded_pixel_data",
        "codec_refused",
    }
