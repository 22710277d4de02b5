"""The IEEE 1159.3 (PQDIF) tags and identifiers the meter writes, as the standard's logical-format tables give
them: record tags, element tags of each record, and the identifier values of the quantity, unit, phase, value
type, characteristic, trigger and disturbance tables. GUIDs are ``uuid.UUID``; they go to the file in the
mixed-endian layout of the standard's C ``GUID`` (``UUID.bytes_le``).
"""
from __future__ import annotations

import uuid

U = uuid.UUID

# ------------------------------------------------------------------ physical format (Annex A)
RECORD_SIGNATURE = U("4a111440-e49f-11cf-9900-505144494600")   # guidRecordSignaturePQDIF, every record header
RECORD_HEADER_SIZE = 64
ELEMENT_HEADER_SIZE = 28
COLLECTION, SCALAR, VECTOR = 1, 2, 3                             # element types
# physical types: (code, struct format, size in bytes)
BOOL4, CHAR1, INT4, UINT4, REAL4, REAL8, TIMESTAMP, GUID = 3, 10, 22, 32, 40, 41, 50, 60
PHYSICAL_SIZES = {BOOL4: 4, CHAR1: 1, INT4: 4, UINT4: 4, REAL4: 4, REAL8: 8, TIMESTAMP: 12, GUID: 16}
# TIMESTAMPPQDIF: UINT4 days and REAL8 seconds of the day, days counted so that 1970-01-01 is day 25569
TIMESTAMP_UNIX_DAY = 25569
VERSION_INFO = (1, 5, 1, 0)        # tagVersionInfo: written as 1.5, readable by readers of 1.0 and later

# ------------------------------------------------------------------ record tags
tagContainer = U("89738606-f1c3-11cf-9d89-0080c72e70a3")
tagRecDataSource = U("89738619-f1c3-11cf-9d89-0080c72e70a3")
tagRecObservation = U("8973861a-f1c3-11cf-9d89-0080c72e70a3")

# ------------------------------------------------------------------ container
tagVersionInfo = U("89738607-f1c3-11cf-9d89-0080c72e70a3")
tagFileName = U("89738608-f1c3-11cf-9d89-0080c72e70a3")
tagCreation = U("89738609-f1c3-11cf-9d89-0080c72e70a3")
tagApplication = U("89738623-f1c3-11cf-9d89-0080c72e70a3")
tagCompressionStyleID = U("8973861b-f1c3-11cf-9d89-0080c72e70a3")
tagCompressionAlgorithmID = U("8973861c-f1c3-11cf-9d89-0080c72e70a3")

# ------------------------------------------------------------------ data source
tagDataSourceTypeID = U("b48d8581-f5f5-11cf-9d89-0080c72e70a3")
tagVendorID = U("b48d8582-f5f5-11cf-9d89-0080c72e70a3")
tagEquipmentID = U("b48d8583-f5f5-11cf-9d89-0080c72e70a3")
tagSerialNumberDS = U("b48d8585-f5f5-11cf-9d89-0080c72e70a3")
tagNameDS = U("b48d8587-f5f5-11cf-9d89-0080c72e70a3")
tagChannelDefns = U("b48d858d-f5f5-11cf-9d89-0080c72e70a3")
tagOneChannelDefn = U("b48d858e-f5f5-11cf-9d89-0080c72e70a3")
tagChannelName = U("b48d8590-f5f5-11cf-9d89-0080c72e70a3")
tagPhaseID = U("b48d8591-f5f5-11cf-9d89-0080c72e70a3")
tagQuantityTypeID = U("b48d8592-f5f5-11cf-9d89-0080c72e70a3")
tagQuantityMeasuredID = U("c690e872-f755-11cf-9d89-0080c72e70a3")
tagQuantityName = U("b48d8595-f5f5-11cf-9d89-0080c72e70a3")
tagSeriesDefns = U("b48d8598-f5f5-11cf-9d89-0080c72e70a3")
tagOneSeriesDefn = U("b48d859a-f5f5-11cf-9d89-0080c72e70a3")
tagValueTypeID = U("b48d859c-f5f5-11cf-9d89-0080c72e70a3")
tagQuantityUnitsID = U("b48d859b-f5f5-11cf-9d89-0080c72e70a3")
tagQuantityCharacteristicID = U("3d786f9e-f76e-11cf-9d89-0080c72e70a3")
tagStorageMethodID = U("b48d85a1-f5f5-11cf-9d89-0080c72e70a3")
tagSeriesNominalQuantity = U("0fa118c8-cb4a-11d2-b30b-fe25cb9a1760")

# ------------------------------------------------------------------ observation
tagObservationName = U("3d786f8a-f76e-11cf-9d89-0080c72e70a3")
tagTimeCreate = U("3d786f8b-f76e-11cf-9d89-0080c72e70a3")
tagTimeStart = U("3d786f8c-f76e-11cf-9d89-0080c72e70a3")
tagTriggerMethodID = U("3d786f8d-f76e-11cf-9d89-0080c72e70a3")
tagTimeTriggered = U("3d786f8e-f76e-11cf-9d89-0080c72e70a3")
tagDisturbanceCategoryID = U("b48d8597-f5f5-11cf-9d89-0080c72e70a3")
tagChannelInstances = U("3d786f91-f76e-11cf-9d89-0080c72e70a3")
tagOneChannelInst = U("3d786f92-f76e-11cf-9d89-0080c72e70a3")
tagChannelDefnIdx = U("b48d858f-f5f5-11cf-9d89-0080c72e70a3")
tagCharactDuration = U("2747d444-2bd0-11d2-ae42-0060083a2628")
tagCharactMagnitude = U("2747d443-2bd0-11d2-ae42-0060083a2628")
tagSeriesInstances = U("3d786f93-f76e-11cf-9d89-0080c72e70a3")
tagOneSeriesInstance = U("3d786f94-f76e-11cf-9d89-0080c72e70a3")
tagSeriesBaseQuantity = U("3d786f95-f76e-11cf-9d89-0080c72e70a3")
tagSeriesValues = U("3d786f99-f76e-11cf-9d89-0080c72e70a3")

# ------------------------------------------------------------------ identifiers
ID_DS_TYPE_MEASURE = U("e6b51730-f747-11cf-9d89-0080c72e70a3")
ID_VENDOR_NONE = U("e6b51701-f747-11cf-9d89-0080c72e70a3")
ID_QT_WAVEFORM = U("67f6af80-f753-11cf-9d89-0080c72e70a3")
ID_QT_VALUELOG = U("67f6af82-f753-11cf-9d89-0080c72e70a3")
ID_QT_MAGDUR = U("67f6af8b-f753-11cf-9d89-0080c72e70a3")
ID_SERIES_VALUE_TYPE_VAL = U("67f6af97-f753-11cf-9d89-0080c72e70a3")
ID_SERIES_VALUE_TYPE_TIME = U("c690e862-f755-11cf-9d89-0080c72e70a3")
ID_SERIES_VALUE_TYPE_MIN = U("67f6af98-f753-11cf-9d89-0080c72e70a3")
ID_SERIES_VALUE_TYPE_MAX = U("67f6af99-f753-11cf-9d89-0080c72e70a3")
ID_SERIES_VALUE_TYPE_AVG = U("67f6af9a-f753-11cf-9d89-0080c72e70a3")
ID_SERIES_VALUE_TYPE_DURATION = U("c690e863-f755-11cf-9d89-0080c72e70a3")
ID_QC_NONE = U("a6b31adf-b451-11d1-ae17-0060083a2628")
ID_QC_INSTANTANEOUS = U("a6b31add-b451-11d1-ae17-0060083a2628")
ID_QC_RMS = U("a6b31ae5-b451-11d1-ae17-0060083a2628")
ID_QC_FREQUENCY = U("07ef68af-9ff5-11d2-b30b-006008b37183")
ID_QC_TOTAL_THD = U("a6b31aec-b451-11d1-ae17-0060083a2628")
ID_QC_FLKR_PST = U("515bf320-71ca-11d4-a4b3-444553540000")

ID_PHASE_NONE, ID_PHASE_AN, ID_PHASE_BN, ID_PHASE_CN, ID_PHASE_NG = 0, 1, 2, 3, 4
ID_PHASE_AB, ID_PHASE_BC, ID_PHASE_CA = 5, 6, 7
ID_QM_NONE, ID_QM_VOLTAGE, ID_QM_CURRENT = 0, 1, 2
ID_QU_NONE, ID_QU_TIMESTAMP, ID_QU_SECONDS, ID_QU_VOLTS, ID_QU_AMPS = 0, 1, 2, 6, 7
ID_QU_HERTZ, ID_QU_PERCENT = 15, 19
ID_SERIES_METHOD_VALUES = 0x01
ID_TRIGGER_METH_NONE, ID_TRIGGER_METH_CHANNEL, ID_TRIGGER_METH_PERIODIC, ID_TRIGGER_METH_EXTERNAL = 0, 1, 2, 3
ID_COMP_STYLE_NONE, ID_COMP_ALG_NONE = 0, 0

# IEEE 1159 disturbance categories of the meter's event kinds (dips and swells by duration: instantaneous up to
# 30 cycles, momentary to 3 s, temporary to 1 min; interruptions momentary to 3 s, temporary to 1 min, else
# sustained (long duration))
ID_DISTURB_1159_TRANSIENT = U("67f6af90-f753-11cf-9d89-0080c72e70a3")
ID_DISTURB_1159_SHORTDUR_INSTANT_SAG = U("dd56ef6a-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_SHORTDUR_INSTANT_SWELL = U("dd56ef6b-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_SHORTDUR_MOMENT_INTERRUPT = U("dd56ef6d-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_SHORTDUR_MOMENT_SAG = U("dd56ef6e-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_SHORTDUR_MOMENT_SWELL = U("dd56ef6f-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_SHORTDUR_TEMP_INTERRUPT = U("dd56ef71-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_SHORTDUR_TEMP_SAG = U("dd56ef72-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_SHORTDUR_TEMP_SWELL = U("dd56ef73-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_LONGDUR_INTERRUPT = U("dd56ef74-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_LONGDUR_SAG = U("dd56ef75-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_LONGDUR_SWELL = U("dd56ef76-7edd-11d2-b30a-00609789d193")
ID_DISTURB_1159_VOLTAGEFLUCTUATION = U("67f6af93-f753-11cf-9d89-0080c72e70a3")
