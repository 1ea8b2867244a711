"""The node classes ComfyUI keeps in each ``comfy_extras.nodes_*`` module (from its /object_info).

Packs import these by module (``from comfy_extras.nodes_clip_sdxl import CLIPTextEncodeSDXL``);
the module is made from the core registry, and a name listed here that the core does not have
yet becomes a placeholder, so that the import works and only using the class fails.
"""

COMFY_EXTRAS_CLASSES: dict[str, tuple[str, ...]] = {
    "comfy_extras.nodes_ace": ("EmptyAceStepLatentAudio", "TextEncodeAceStepAudio",),
    "comfy_extras.nodes_advanced_samplers": ("SamplerEulerCFGpp", "SamplerLCMUpscale",),
    "comfy_extras.nodes_align_your_steps": ("AlignYourStepsScheduler",),
    "comfy_extras.nodes_apg": ("APG",),
    "comfy_extras.nodes_attention_multiply": (
        "CLIPAttentionMultiply", "UNetCrossAttentionMultiply", "UNetSelfAttentionMultiply",
        "UNetTemporalAttentionMultiply",
    ),
    "comfy_extras.nodes_audio": (
        "AudioAdjustVolume", "AudioConcat", "AudioMerge", "ConditioningStableAudio", "EmptyAudio",
        "EmptyLatentAudio", "LoadAudio", "PreviewAudio", "RecordAudio", "SaveAudio",
        "SaveAudioMP3", "SaveAudioOpus", "SplitAudioChannels", "TrimAudioDuration",
        "VAEDecodeAudio", "VAEEncodeAudio",
    ),
    "comfy_extras.nodes_audio_encoder": ("AudioEncoderEncode", "AudioEncoderLoader",),
    "comfy_extras.nodes_camera_trajectory": ("WanCameraEmbedding",),
    "comfy_extras.nodes_canny": ("Canny",),
    "comfy_extras.nodes_cfg": ("CFGNorm", "CFGZeroStar",),
    "comfy_extras.nodes_chroma_radiance": (
        "ChromaRadianceOptions", "EmptyChromaRadianceLatentImage",
    ),
    "comfy_extras.nodes_clip_sdxl": ("CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner",),
    "comfy_extras.nodes_compositing": (
        "JoinImageWithAlpha", "PorterDuffImageComposite", "SplitImageWithAlpha",
    ),
    "comfy_extras.nodes_cond": ("CLIPTextEncodeControlnet", "T5TokenizerOptions",),
    "comfy_extras.nodes_context_windows": ("ContextWindowsManual", "WanContextWindowsManual",),
    "comfy_extras.nodes_controlnet": (
        "ControlNetInpaintingAliMamaApply", "SetUnionControlNetType",
    ),
    "comfy_extras.nodes_cosmos": (
        "CosmosImageToVideoLatent", "CosmosPredict2ImageToVideoLatent", "EmptyCosmosLatentVideo",
    ),
    "comfy_extras.nodes_custom_sampler": (
        "AddNoise", "BasicGuider", "BasicScheduler", "BetaSamplingScheduler", "CFGGuider",
        "DisableNoise", "DualCFGGuider", "ExponentialScheduler", "ExtendIntermediateSigmas",
        "FlipSigmas", "KSamplerSelect", "KarrasScheduler", "LaplaceScheduler",
        "PolyexponentialScheduler", "RandomNoise", "SDTurboScheduler", "SamplerCustom",
        "SamplerCustomAdvanced", "SamplerDPMAdaptative", "SamplerDPMPP_2M_SDE",
        "SamplerDPMPP_2S_Ancestral", "SamplerDPMPP_3M_SDE", "SamplerDPMPP_SDE", "SamplerER_SDE",
        "SamplerEulerAncestral", "SamplerEulerAncestralCFGPP", "SamplerLMS", "SamplerSASolver",
        "SamplingPercentToSigma", "SetFirstSigma", "SplitSigmas", "SplitSigmasDenoise",
        "VPScheduler",
    ),
    "comfy_extras.nodes_differential_diffusion": ("DifferentialDiffusion",),
    "comfy_extras.nodes_easycache": ("EasyCache", "LazyCache",),
    "comfy_extras.nodes_edit_model": ("ReferenceLatent",),
    "comfy_extras.nodes_eps": ("Epsilon Scaling",),
    "comfy_extras.nodes_flux": (
        "CLIPTextEncodeFlux", "FluxDisableGuidance", "FluxGuidance", "FluxKontextImageScale",
        "FluxKontextMultiReferenceLatentMethod",
    ),
    "comfy_extras.nodes_freelunch": ("FreeU", "FreeU_V2",),
    "comfy_extras.nodes_fresca": ("FreSca",),
    "comfy_extras.nodes_gits": ("GITSScheduler",),
    "comfy_extras.nodes_hidream": ("CLIPTextEncodeHiDream", "QuadrupleCLIPLoader",),
    "comfy_extras.nodes_hooks": (
        "CombineHooks2", "CombineHooks4", "CombineHooks8", "ConditioningSetDefaultCombine",
        "ConditioningSetProperties", "ConditioningSetPropertiesAndCombine",
        "ConditioningTimestepsRange", "CreateHookKeyframe", "CreateHookKeyframesFromFloats",
        "CreateHookKeyframesInterpolated", "CreateHookLora", "CreateHookLoraModelOnly",
        "CreateHookModelAsLora", "CreateHookModelAsLoraModelOnly", "PairConditioningCombine",
        "PairConditioningSetDefaultCombine", "PairConditioningSetProperties",
        "PairConditioningSetPropertiesAndCombine", "SetClipHooks", "SetHookKeyframes",
    ),
    "comfy_extras.nodes_hunyuan": (
        "CLIPTextEncodeHunyuanDiT", "EmptyHunyuanImageLatent", "EmptyHunyuanLatentVideo",
        "HunyuanImageToVideo", "HunyuanRefinerLatent", "TextEncodeHunyuanVideo_ImageToVideo",
    ),
    "comfy_extras.nodes_hunyuan3d": (
        "EmptyLatentHunyuan3Dv2", "Hunyuan3Dv2Conditioning", "Hunyuan3Dv2ConditioningMultiView",
        "SaveGLB", "VAEDecodeHunyuan3D", "VoxelToMesh", "VoxelToMeshBasic",
    ),
    "comfy_extras.nodes_hypernetwork": ("HypernetworkLoader",),
    "comfy_extras.nodes_hypertile": ("HyperTile",),
    "comfy_extras.nodes_images": (
        "GetImageSize", "ImageAddNoise", "ImageCrop", "ImageFlip", "ImageFromBatch", "ImageRotate",
        "ImageScaleToMaxDimension", "ImageStitch", "RepeatImageBatch", "ResizeAndPadImage",
        "SaveAnimatedPNG", "SaveAnimatedWEBP", "SaveSVGNode",
    ),
    "comfy_extras.nodes_ip2p": ("InstructPixToPixConditioning",),
    "comfy_extras.nodes_latent": (
        "LatentAdd", "LatentApplyOperation", "LatentApplyOperationCFG", "LatentBatch",
        "LatentBatchSeedBehavior", "LatentConcat", "LatentCut", "LatentInterpolate",
        "LatentMultiply", "LatentOperationSharpen", "LatentOperationTonemapReinhard",
        "LatentSubtract",
    ),
    "comfy_extras.nodes_load_3d": ("Load3D", "Load3DAnimation", "Preview3D", "Preview3DAnimation",),
    "comfy_extras.nodes_lora_extract": ("LoraSave",),
    "comfy_extras.nodes_lotus": ("LotusConditioning",),
    "comfy_extras.nodes_lt": (
        "EmptyLTXVLatentVideo", "LTXVAddGuide", "LTXVConditioning", "LTXVCropGuides",
        "LTXVImgToVideo", "LTXVPreprocess", "LTXVScheduler", "ModelSamplingLTXV",
    ),
    "comfy_extras.nodes_lumina2": ("CLIPTextEncodeLumina2", "RenormCFG",),
    "comfy_extras.nodes_mahiro": ("Mahiro",),
    "comfy_extras.nodes_mask": (
        "CropMask", "FeatherMask", "GrowMask", "ImageColorToMask", "ImageCompositeMasked",
        "ImageToMask", "InvertMask", "LatentCompositeMasked", "MaskComposite", "MaskPreview",
        "MaskToImage", "SolidMask", "ThresholdMask",
    ),
    "comfy_extras.nodes_mochi": ("EmptyMochiLatentVideo",),
    "comfy_extras.nodes_model_advanced": (
        "ModelComputeDtype", "ModelSamplingAuraFlow", "ModelSamplingContinuousEDM",
        "ModelSamplingContinuousV", "ModelSamplingDiscrete", "ModelSamplingFlux",
        "ModelSamplingSD3", "ModelSamplingStableCascade", "RescaleCFG",
    ),
    "comfy_extras.nodes_model_downscale": ("PatchModelAddDownscale",),
    "comfy_extras.nodes_model_merging": (
        "CLIPMergeAdd", "CLIPMergeSimple", "CLIPMergeSubtract", "CLIPSave", "CheckpointSave",
        "ModelMergeAdd", "ModelMergeBlocks", "ModelMergeSimple", "ModelMergeSubtract", "ModelSave",
        "VAESave",
    ),
    "comfy_extras.nodes_model_merging_model_specific": (
        "ModelMergeAuraflow", "ModelMergeCosmos14B", "ModelMergeCosmos7B",
        "ModelMergeCosmosPredict2_14B", "ModelMergeCosmosPredict2_2B", "ModelMergeFlux1",
        "ModelMergeLTXV", "ModelMergeMochiPreview", "ModelMergeQwenImage", "ModelMergeSD1",
        "ModelMergeSD2", "ModelMergeSD35_Large", "ModelMergeSD3_2B", "ModelMergeSDXL",
        "ModelMergeWAN2_1",
    ),
    "comfy_extras.nodes_model_patch": (
        "ModelPatchLoader", "QwenImageDiffsynthControlnet", "USOStyleReference",
    ),
    "comfy_extras.nodes_morphology": ("ImageRGBToYUV", "ImageYUVToRGB", "Morphology",),
    "comfy_extras.nodes_optimalsteps": ("OptimalStepsScheduler",),
    "comfy_extras.nodes_pag": ("PerturbedAttentionGuidance",),
    "comfy_extras.nodes_perpneg": ("PerpNeg", "PerpNegGuider",),
    "comfy_extras.nodes_photomaker": ("PhotoMakerEncode", "PhotoMakerLoader",),
    "comfy_extras.nodes_pixart": ("CLIPTextEncodePixArtAlpha",),
    "comfy_extras.nodes_post_processing": (
        "ImageBlend", "ImageBlur", "ImageQuantize", "ImageScaleToTotalPixels", "ImageSharpen",
    ),
    "comfy_extras.nodes_preview_any": ("PreviewAny",),
    "comfy_extras.nodes_primitive": (
        "PrimitiveBoolean", "PrimitiveFloat", "PrimitiveInt", "PrimitiveString",
        "PrimitiveStringMultiline",
    ),
    "comfy_extras.nodes_qwen": ("TextEncodeQwenImageEdit", "TextEncodeQwenImageEditPlus",),
    "comfy_extras.nodes_rebatch": ("RebatchImages", "RebatchLatents",),
    "comfy_extras.nodes_sag": ("SelfAttentionGuidance",),
    "comfy_extras.nodes_sd3": (
        "CLIPTextEncodeSD3", "ControlNetApplySD3", "EmptySD3LatentImage", "SkipLayerGuidanceSD3",
        "TripleCLIPLoader",
    ),
    "comfy_extras.nodes_sdupscale": ("SD_4XUpscale_Conditioning",),
    "comfy_extras.nodes_slg": ("SkipLayerGuidanceDiT", "SkipLayerGuidanceDiTSimple",),
    "comfy_extras.nodes_stable3d": (
        "SV3D_Conditioning", "StableZero123_Conditioning", "StableZero123_Conditioning_Batched",
    ),
    "comfy_extras.nodes_stable_cascade": (
        "StableCascade_EmptyLatentImage", "StableCascade_StageB_Conditioning",
        "StableCascade_StageC_VAEEncode", "StableCascade_SuperResolutionControlnet",
    ),
    "comfy_extras.nodes_string": (
        "CaseConverter", "RegexExtract", "RegexMatch", "RegexReplace", "StringCompare",
        "StringConcatenate", "StringContains", "StringLength", "StringReplace", "StringSubstring",
        "StringTrim",
    ),
    "comfy_extras.nodes_tcfg": ("TCFG",),
    "comfy_extras.nodes_tomesd": ("TomePatchModel",),
    "comfy_extras.nodes_torch_compile": ("TorchCompileModel",),
    "comfy_extras.nodes_train": (
        "LoadImageSetFromFolderNode", "LoadImageTextSetFromFolderNode", "LoraModelLoader",
        "LossGraphNode", "SaveLoRANode", "TrainLoraNode",
    ),
    "comfy_extras.nodes_upscale_model": ("ImageUpscaleWithModel", "UpscaleModelLoader",),
    "comfy_extras.nodes_video": (
        "CreateVideo", "GetVideoComponents", "LoadVideo", "SaveVideo", "SaveWEBM",
    ),
    "comfy_extras.nodes_video_model": (
        "ConditioningSetAreaPercentageVideo", "ImageOnlyCheckpointLoader",
        "ImageOnlyCheckpointSave", "SVD_img2vid_Conditioning", "VideoLinearCFGGuidance",
        "VideoTriangleCFGGuidance",
    ),
    "comfy_extras.nodes_wan": (
        "TrimVideoLatent", "Wan22FunControlToVideo", "Wan22ImageToVideoLatent",
        "WanAnimateToVideo", "WanCameraImageToVideo", "WanFirstLastFrameToVideo",
        "WanFunControlToVideo", "WanFunInpaintToVideo", "WanHuMoImageToVideo", "WanImageToVideo",
        "WanPhantomSubjectToVideo", "WanSoundImageToVideo", "WanSoundImageToVideoExtend",
        "WanTrackToVideo", "WanVaceToVideo",
    ),
    "comfy_extras.nodes_webcam": ("WebcamCapture",),
}
