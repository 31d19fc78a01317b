// MOT 1.1 (MOT Challenge ground truth) as CVAT and Datumaro write it:
//   gt/gt.txt       CSV without header: frame_id,track_id,x,y,w,h,not_ignored,class_id,visibility
//                   (absolute pixels; class_id 1-based into labels.txt; -1 for no class)
//   gt/labels.txt   label names, one a line (class_id = line index + 1)
//   img1/<frame>.<ext>   frames named by number (000001.jpg); every frame there is an image, with or
//                   without boxes. seqinfo.ini, when present, may name another imDir and the frame size.
// One subset, "default". Decisions, as MOT Challenge's own evaluation treats these flags:
//  - not_ignored = 0 (CVAT: the `ignored` attribute): an ignore region (iscrowd), not trained on and
//    ignored by evaluation. It must be 0 or 1 (gt files hold a flag, not a score).
//  - visibility in [0, 1] (CVAT writes its `visibility` attribute, else 1 - occluded): boxes below
//    min_visibility become ignore regions too. The default, 0, keeps every box: CVAT writes 0 for every
//    occluded box, which its COCO export of the same task trains on.
#pragma once
#include <filesystem>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// Errors name the file, line and field: a row without 9 fields, a frame id, class or flag that is not
// an integer in range, a coordinate that is not a finite number, a visibility outside [0, 1].
RawExport read_mot(const std::filesystem::path& root, double min_visibility = 0);

}  // namespace detr::datasets::formats
